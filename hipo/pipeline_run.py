"""The embedded default: the whole DAG through kfp.local on this machine, and compiling it for a cluster.

``run_local`` executes the very pipeline function a cluster runs, each step a subprocess of the
installed package, artifacts under ``<out>/artifacts``. Without a tracking server the registry is a
SQLite file shared by every local run (``<runs>/mlflow.db``), so the promotion gate compares each run's
challenger with the champion of the runs before it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipo.config import ConfigError, RunConfig, build_config, mlflow_tracking_uri
from hipo.parameters import from_config, to_overrides

COMPILED = Path(__file__).resolve().parent.parent / "pipelines" / "compiled" / "hipo_pipeline.yaml"


class PipelineFailed(RuntimeError):
    """A step failed; the message names the step and carries its own error."""


@dataclass(frozen=True)
class LocalRun:
    run_dir: Path
    summary: str  # the evaluation table (Markdown)
    report: Path
    model_name: str
    version: str
    aliases: tuple[str, ...]
    comparison: Path | None  # the five-arm (or against Cold-Start (on)) report, when arms were run
    comparison_summary: str  # its table (Markdown), "" without arms


def compile_pipeline(path: str | Path = COMPILED, **cluster: Any) -> Path:
    """Write the cluster pipeline (GPU requests, node selectors, tolerations, Secrets) to ``path``."""
    from kfp import compiler

    from pipelines.hipo_pipeline import ClusterSettings, build_pipeline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(ClusterSettings(**cluster)), str(path))
    return path


def local_config(config: RunConfig, runs_root: Path) -> RunConfig:
    """``config`` with a local registry (``runs_root/mlflow.db``) where no tracking server is set."""
    if config.registry.tracking_uri or mlflow_tracking_uri():
        return config
    db = (runs_root / "mlflow.db").resolve()
    registry = config.registry.model_copy(update={"tracking_uri": f"sqlite:///{db}"})
    return config.model_copy(update={"registry": registry})


def _task_dir(run_dir: Path, task: str) -> Path | None:
    """The folder kfp.local gave the task (tasks of one component are ``name``, ``name-2``, ...)."""
    return run_dir / task if (run_dir / task).is_dir() else None


def _failed_step(run_dir: Path, error: Exception) -> str:
    """The failing step's own message: what it wrote to ``error.txt`` (else kfp.local's line)."""
    for path in sorted(run_dir.glob("*/error.txt"), key=lambda p: p.stat().st_mtime):
        return f"step {path.parent.name} failed: {path.read_text(encoding='utf-8').strip()}"
    return str(error)


def _config_yaml(config: RunConfig) -> str:
    """The full configuration for the ``config_yaml`` parameter, or "" where the typed pipeline
    parameters already say everything (keeps the step logs short)."""
    parameters = from_config(config)
    return "" if build_config({}, to_overrides(parameters)) == config else config.to_yaml()


def run_local(config: RunConfig, out_dir: str | Path, arms: str = "hipo") -> LocalRun:
    """Run the pipeline with kfp.local into ``out_dir``; raises PipelineFailed naming the failed step.

    Everything a step produced before a failure stays under ``out_dir/artifacts``.
    """
    from kfp import local

    from pipelines.hipo_pipeline import ARMS, hipo_pipeline

    if arms not in ARMS:
        raise ConfigError(f"--arms must be one of {ARMS}, got {arms!r}")
    out = Path(out_dir).resolve()
    config = local_config(config, out.parent)
    root = out / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.perf_counter()
    print(f"hipo run: config {config.config_hash()}, arms {arms}, artifacts in {root}", file=sys.stderr)
    try:
        hipo_pipeline(**from_config(config), arms=arms, config_yaml=_config_yaml(config))
    except RuntimeError as error:
        new = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
        raise PipelineFailed(_failed_step(new[-1], error) if new else str(error)) from None
    run_dir = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)[-1]
    print(f"hipo run: finished in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return _collect(run_dir, config, arms)


def _collect(run_dir: Path, config: RunConfig, arms: str) -> LocalRun:
    from hipo.registry import describe

    results = _task_dir(run_dir, "evaluate")
    if results is None:
        raise PipelineFailed(f"no evaluate step output under {run_dir}")
    registered = json.loads((_task_dir(run_dir, "register") / "executor_output.json").read_text())
    number = str(registered["parameterValues"]["Output"])
    summary = describe(config.registry.model_name, tracking_uri=config.registry.tracking_uri or None)
    aliases = next((v.aliases for v in summary.versions if v.version == number), ())
    other = _task_dir(run_dir, "compare-arms" if arms == "all" else "evaluate-2") if arms != "hipo" else None
    return LocalRun(
        run_dir=run_dir,
        summary=(results / "results" / "summary.md").read_text(encoding="utf-8"),
        report=results / "report",
        model_name=config.registry.model_name,
        version=number,
        aliases=tuple(aliases),
        comparison=other / "report" if other else None,
        comparison_summary=(other / "results" / "summary.md").read_text(encoding="utf-8") if other else "",
    )
