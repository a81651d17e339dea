"""Text generation engines behind one interface (base.Engine): scripted teacher, transformers, vLLM, HTTP.

``ScriptedEngine`` and the interface import light; ``HFEngine``, ``OpenAIEngine`` and ``VLLMEngine``
load their libraries on first use (``from hipo.engines import HFEngine`` works too).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hipo.config import DataConfig
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


def _model_dir(data: DataConfig) -> Path:
    if not data.teacher_model:
        raise EngineError(
            f"data.teacher is {data.teacher!r} but data.teacher_model is empty: "
            "set data.teacher_model to a local model directory"
        )
    path = Path(data.teacher_model)
    if not (path / "config.json").is_file():
        raise EngineError(
            f"data.teacher_model {str(path)!r} is not a model directory (no config.json): "
            "set data.teacher_model to a local directory written by save_pretrained"
        )
    return path


def make_teacher(data: DataConfig, cache_dir: Path | None = None) -> Engine:
    """The teacher engine named by ``data.teacher``, seeded with ``data.seed``.

    ``cache_dir`` is the openai teacher's response cache (None: no cache); the others ignore it.
    """
    if data.teacher == "scripted":
        return ScriptedEngine(seed=data.seed)
    if data.teacher == "scripted+hf":
        from hipo.engines.routed import RoutedEngine, model_teacher

        return RoutedEngine(ScriptedEngine(seed=data.seed), model_teacher(data, cache_dir))
    if data.teacher in ("hf", "vllm"):
        path = _model_dir(data)  # before the heavy import: a config mistake fails fast
        if data.teacher == "hf":
            from hipo.engines.hf import HFEngine

            return HFEngine(path, seed=data.seed)
        from hipo.engines.vllm_engine import VLLMEngine

        return VLLMEngine(path, seed=data.seed)
    if data.teacher == "openai":
        from hipo.engines.openai_http import OpenAIEngine

        if not data.teacher_endpoint.model:
            raise EngineError("data.teacher is 'openai' but data.teacher_endpoint.model is empty: set it")
        return OpenAIEngine(
            data.teacher_endpoint, cache_dir, seed=data.seed, prefill_mode=data.teacher_endpoint.prefill
        )
    raise EngineError(
        f"unknown teacher {data.teacher!r}: use 'scripted', 'hf', 'openai', 'vllm' or 'scripted+hf'"
    )
