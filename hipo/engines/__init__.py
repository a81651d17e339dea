"""Text generation engines behind one interface (base.Engine): scripted teacher, transformers, vLLM, HTTP.

``ScriptedEngine`` and the interface import light; ``HFEngine``, ``OpenAIEngine`` and ``VLLMEngine``
load their libraries on first use (``from hipo.engines import HFEngine`` works too).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hipo.config import DataConfig
from hipo.engines import registry
from hipo.engines.base import Completion, Engine, EngineError
from hipo.engines.scripted import ScriptedEngine

__all__ = [
    "Completion",
    "Engine",
    "EngineError",
    "HFEngine",
    "OpenAIEngine",
    "ScriptedEngine",
    "VLLMEngine",
    "make_teacher",
]

_LAZY = {
    "HFEngine": "hipo.engines.hf",
    "OpenAIEngine": "hipo.engines.openai_http",
    "VLLMEngine": "hipo.engines.vllm_engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_teacher(data: DataConfig, cache_dir: Path | None = None) -> Engine:
    """The teacher engine named by ``data.teacher``, seeded with ``data.seed``.

    ``cache_dir`` is the openai teacher's response cache (None: no cache); the others ignore it.
    """
    return registry.factory(data.teacher, "teacher")(data, cache_dir)
