"""Evaluate several models on the configured benchmarks and write one report comparing them.

What ``hipo evaluate`` and the pipeline's evaluate step both call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hipo.config import ConfigError, RunConfig
from hipo.evaluate.benchmarks import labels_from_dataset, load_benchmarks
from hipo.evaluate.metrics import EvalResult
from hipo.evaluate.report import write_report
from hipo.evaluate.reuse import model_digest
from hipo.evaluate.runner import evaluate_model, preflight_models

if TYPE_CHECKING:
    from hipo.engines.base import Engine


def engine_for(model: str, config: RunConfig) -> Engine:
    """The scripted teacher (``model="scripted"``), or a checkpoint served by ``config.eval.engine``."""
    if model == "scripted":
        from hipo.engines import ScriptedEngine

        return ScriptedEngine(seed=config.seed)
    from hipo.engines import registry

    return registry.factory(config.eval.engine, "checkpoint")(model, config)


def hf_checkpoint(model: str, config: RunConfig) -> Engine:
    import torch

    from hipo.engines.base import EngineError
    from hipo.engines.hf import HFEngine
    from hipo.models.folder import ModelError, load_problem

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return HFEngine(model, batch_size=config.eval.batch_size, device=device, seed=config.seed)
    except EngineError:
        raise
    except Exception as error:  # weights that do not fit their config.json, and the like
        raise ModelError(f"model folder {model}: {load_problem(error)}") from None


def vllm_checkpoint(model: str, config: RunConfig) -> Engine:
    from hipo.engines.vllm_engine import VLLMEngine

    return VLLMEngine(model, seed=config.seed)


class OnFirstUse:
    """The engine ``build`` makes, made at the first ``generate``: with an earlier evaluation to copy
    from, a model whose samples are all there is never loaded (vLLM's start-up alone takes minutes)."""

    def __init__(self, name: str, build: Callable[[], Engine]) -> None:
        self.name, self._build, self._engine = name, build, None

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if self._engine is None:
            self._engine = self._build()
        return self._engine.generate(*args, **kwargs)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def evaluate_models(
    config: RunConfig,
    models: dict[str, str],
    out_dir: str | Path,
    labels: str | Path | None = None,
    title: str = "HiPO evaluation",
    baseline: str = "Cold-Start (on)",
    primary: str | None = None,
    earlier: str | Path | None = None,
) -> tuple[dict[str, EvalResult], dict[str, str]]:
    """Score each ``{display name: model}`` into ``out_dir/models/<slug>`` (resumable), then write
    report.html, summary.md and metrics.json (the ``primary`` model's, relative to ``baseline``).
    ``labels``: a dataset with preferred modes, for mode-choice accuracy. ``earlier``: another
    evaluation's ``out_dir``, whose samples of the same model files and settings are reused.
    Returns results and files."""
    slugs = [slug(name) for name in models]
    if not models or len(set(slugs)) != len(slugs):
        raise ConfigError(f"give each model a distinct display name, got {list(models)}")
    preflight_models(models)
    if earlier and not Path(earlier).is_dir():
        raise ConfigError(f"earlier evaluation {earlier}: no such folder (pass an earlier evaluate --out)")
    benchmarks = load_benchmarks(config.eval, config.seed)
    label_map = labels_from_dataset(labels) if labels else None
    results = {}
    for (name, model), model_slug in zip(models.items(), slugs, strict=True):
        out = Path(out_dir) / "models" / model_slug
        if earlier:
            served = "scripted" if model == "scripted" else f"{config.eval.engine}:{model}"
            engine = OnFirstUse(served, lambda m=model: engine_for(m, config))
        else:
            engine = engine_for(model, config)
        digest = model_digest(model)
        results[name] = evaluate_model(
            engine, benchmarks, config, out, labels=label_map, model_digest=digest, earlier=earlier
        )
    files = write_report(results, out_dir, title=title, baseline=baseline, primary=primary)
    return results, files
