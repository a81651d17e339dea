"""The data-quality gate (the ``validate_data`` step): run the suite, collect results, pass or fail.

``validate_dataset`` reads the dataset, adds the helper columns, runs every check as one
great-expectations ValidationDefinition over an ephemeral context, and returns a :class:`GateResult`;
``check`` raises :class:`GateFailed` naming every failed expectation with offending rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from hipo.config import QualityConfig
from hipo.quality.derive import add_helpers
from hipo.quality.report import render_html
from hipo.quality.suite import Check, build_checks
from hipo.storage.datasets import ROW_COLUMN, SPLIT_COLUMN, Dataset, DatasetError, load_dataset

MAX_TEXT = 160  # characters of a text value shown in an example row


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation. ``success`` is None when it was not run (its columns are missing)."""

    name: str
    description: str
    expectation: str  # the great-expectations type, e.g. expect_column_values_to_be_in_set
    success: bool | None
    unexpected_count: int | None = None  # offending rows, for row-level expectations
    observed: Any = None  # the observed value of an aggregate expectation, or what is missing
    examples: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # why it was not run, or the error great-expectations raised


@dataclass(frozen=True)
class GateResult:
    """Every check's outcome; ``passed`` only when all ran and succeeded."""

    dataset: str
    passed: bool
    checks: list[CheckResult]
    row_counts: dict[str, int]
    files: dict[str, str]
    seconds: float

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.success is False]

    @property
    def skipped(self) -> list[CheckResult]:
        return [c for c in self.checks if c.success is None]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data (result.json)."""
        out = asdict(self)
        out["failed"] = [c.name for c in self.failures]
        out["not_run"] = [c.name for c in self.skipped]
        return out

    def html(self) -> str:
        """The self-contained HTML report (report.html)."""
        return render_html(self)

    def message(self) -> str:
        """A summary that names every failed expectation with example rows."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"data-quality gate {verdict} for {self.dataset} (rows {self.row_counts}): "
            f"{len(self.failures)} of {len(self.checks)} expectations failed"
        ]
        for c in self.failures:
            facts = [
                f"{c.unexpected_count} offending row{'s' * (c.unexpected_count > 1)}"
                if c.unexpected_count
                else "",
                f"observed {c.observed!r}" if c.observed is not None else "",
                c.note,
            ]
            lines.append(f"- {c.name}: {c.description}: {'; '.join(f for f in facts if f)}")
            lines += [f"    e.g. {example}" for example in c.examples]
        if self.skipped:
            lines.append(f"not run (their columns are missing): {', '.join(c.name for c in self.skipped)}")
        return "\n".join(lines)


class GateFailed(DatasetError):
    """The dataset did not pass the gate; ``result`` holds everything, the message the failures. A
    DatasetError, so a command that runs the gate on its way (``hipo signal``) reports it as one."""

    def __init__(self, result: GateResult) -> None:
        super().__init__(result.message())
        self.result = result


def check(result: GateResult) -> GateResult:
    """``result`` when it passed; otherwise raise :class:`GateFailed`."""
    if not result.passed:
        raise GateFailed(result)
    return result


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a cell or observed value (numpy scalars, NA, long text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    return value if isinstance(value, bool | int | float | str) else str(value)


def _examples(check: Check, result: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The offending rows great-expectations sampled (up to ``partial_unexpected_count``)."""
    rows = result.get("partial_unexpected_index_list") or []
    columns = [c for c in ("id", SPLIT_COLUMN, ROW_COLUMN, *check.show) if c in frame]
    picked = frame.loc[[r for r in rows if r in frame.index], list(dict.fromkeys(columns))]
    renamed = picked.rename(columns={SPLIT_COLUMN: "split", ROW_COLUMN: "row"})
    return [{k: _plain(v) for k, v in row.items()} for row in renamed.to_dict("records")]


def _observed(result: dict[str, Any]) -> Any:
    columns = result.get("details", {}).get("mismatched", {}).get("missing")  # expect_table_columns_*
    missing = columns or result.get("partial_missing_list")  # expect_column_distinct_values_to_contain_set
    if missing:
        return {"missing": sorted(missing)}
    observed = result.get("observed_value")
    return _plain(observed) if not isinstance(observed, list | dict) else None


def _error(info: dict[str, Any]) -> str:
    """The message of an exception great-expectations caught (top level, or per metric)."""
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = dict.fromkeys(str(e.get("exception_message")) for e in found if e.get("raised_exception"))
    return f"great-expectations could not evaluate it: {'; '.join(messages)}" if messages else ""


def _run_suite(frame: pd.DataFrame, checks: list[Check], examples: int) -> dict[str, dict[str, Any]]:
    """Validate ``frame`` with one suite of ``checks``; the JSON form of each result, by check name."""
    settings = DataContextConfig(  # in memory, no Data Docs site, no analytics, no progress bars
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=settings)
    batch = context.data_sources.add_pandas("hipo").add_dataframe_asset("dataset")
    suite = context.suites.add(gx.ExpectationSuite("hipo_quality_gate", [c.expectation for c in checks]))
    definition = gx.ValidationDefinition(
        name="hipo_quality_gate", data=batch.add_batch_definition_whole_dataframe("all_rows"), suite=suite
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
    run = context.validation_definitions.add(definition).run(
        batch_parameters={"dataframe": frame}, result_format=result_format
    )
    return {r.expectation_config.meta["name"]: r.to_json_dict() for r in run.results}


def _outcome(check: Check, raw: dict[str, Any] | None, data: Dataset, frame: pd.DataFrame) -> CheckResult:
    kind = check.expectation.expectation_type
    if raw is None:
        missing = [c for c in check.needs if c not in frame]
        return CheckResult(check.name, check.description, kind, None, note=f"needs missing columns {missing}")
    result = raw.get("result") or {}
    examples = _examples(check, result, frame) if not raw["success"] else []
    if check.name == "columns_present" and data.missing_columns:
        examples = [{"split": split, "missing": columns} for split, columns in data.missing_columns.items()]
    return CheckResult(
        name=check.name,
        description=check.description,
        expectation=kind,
        success=bool(raw["success"]),
        unexpected_count=result.get("unexpected_count"),
        observed=_observed(result),
        examples=examples,
        note=_error(raw.get("exception_info") or {}),
    )


def validate_dataset(dataset_dir: str | Path, config: QualityConfig) -> GateResult:
    """Run the gate over the train and eval files in ``dataset_dir`` (a local directory or s3:// prefix).

    Raises :class:`~hipo.storage.datasets.DatasetError` when a file cannot be read at all.
    """
    start = time.perf_counter()
    data = load_dataset(dataset_dir)
    frame = add_helpers(data.frame)
    checks = build_checks(config)
    runnable = [c for c in checks if all(column in frame for column in c.needs)]
    raw = _run_suite(frame, runnable, config.examples_per_failure)
    results = [_outcome(c, raw.get(c.name), data, frame) for c in checks]
    return GateResult(
        dataset=str(dataset_dir),
        passed=all(r.success for r in results),
        checks=results,
        row_counts=data.row_counts,
        files=data.files,
        seconds=round(time.perf_counter() - start, 3),
    )
