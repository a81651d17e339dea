"""The built-in teachers' factories, named in hipo/engines/registry.py. Heavy libraries load inside
them, after the cheap checks, so a config mistake fails fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hipo.engines.base import Engine, EngineError

if TYPE_CHECKING:
    from hipo.config import DataConfig


def model_dir(data: DataConfig) -> Path:
    """``data.teacher_model`` as a model directory."""
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


def scripted_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    from hipo.engines.scripted import ScriptedEngine

    return ScriptedEngine(seed=data.seed)


def hf_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    path = model_dir(data)
    from hipo.engines.hf import HFEngine

    return HFEngine(path, seed=data.seed)


def vllm_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    path = model_dir(data)
    from hipo.engines.vllm_engine import VLLMEngine

    return VLLMEngine(path, seed=data.seed)


def openai_teacher(data: DataConfig, cache_dir: Path | None) -> Engine:
    from hipo.engines.openai_http import OpenAIEngine

    if not data.teacher_endpoint.model:
        raise EngineError("data.teacher is 'openai' but data.teacher_endpoint.model is empty: set it")
    return OpenAIEngine(
        data.teacher_endpoint, cache_dir, seed=data.seed, prefill_mode=data.teacher_endpoint.prefill
    )
