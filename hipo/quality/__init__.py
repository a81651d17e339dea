"""The data-quality gate of the ``validate_data`` step: a great-expectations suite over the hybrid SFT set.

    result = validate_dataset("out/dataset", config.quality)
    write_report(result, "out/quality")   # result.json + report.html
    check(result)                         # raises GateFailed naming every failed expectation

Names are imported on first use: great-expectations takes seconds to import, and the data pipeline
only needs ``hipo.storage.datasets``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DATASET_COLUMNS": "hipo.storage.datasets",
    "DatasetError": "hipo.storage.datasets",
    "CheckResult": "hipo.quality.gate",
    "GateFailed": "hipo.quality.gate",
    "GateResult": "hipo.quality.gate",
    "check": "hipo.quality.gate",
    "validate_dataset": "hipo.quality.gate",
    "write_report": "hipo.quality.report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
