"""The embedded default: the whole DAG through kfp.local on this machine, and compiling it for a cluster.

``run_local`` executes the very pipeline function a cluster runs, each step a subprocess of the
installed package, artifacts under ``<out>/artifacts/<run>``, each step's log under its ``logs``
folder. Without a tracking server the registry is the local one (``runs/mlflow.db`` in the working
directory, hipo.registry.client), shared by every local run, so the promotion gate compares each
run's challenger with the champion of the runs before it. Each run gets one MLflow run, named like
its artifacts folder, under which its training curves and the registration nest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hipo.config import MLFLOW_PARENT_RUN_VARIABLE, ConfigError, RunConfig
from hipo.pipeline.parameters import from_config, to_config

if TYPE_CHECKING:
    from hipo.pipeline.progress import ProgressView

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / "hipo_pipeline.yaml"


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
    tracking_uri: str
    mlflow_run_id: str  # the pipeline run's MLflow run
    logs: Path  # the steps' log files


def compile_pipeline(path: str | Path = COMPILED, **cluster: Any) -> Path:
    """Write the cluster pipeline (GPU requests, node selectors, tolerations, Secrets) to ``path``."""
    from kfp import compiler

    from pipelines.hipo_pipeline import ClusterSettings, build_pipeline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(ClusterSettings(**cluster)), str(path))
    return path


def local_config(config: RunConfig) -> RunConfig:
    """``config`` with the tracking URI every step uses: registry.tracking_uri, else
    MLFLOW_TRACKING_URI, else the local registry (``runs/mlflow.db``)."""
    from hipo.registry.client import resolve_uri

    uri = resolve_uri(config.registry.tracking_uri or None)
    return config.model_copy(update={"registry": config.registry.model_copy(update={"tracking_uri": uri})})


def _task_dir(run_dir: Path, task: str) -> Path | None:
    """The folder kfp.local gave the task (tasks of one component are ``name``, ``name-2``, ...)."""
    return run_dir / task if (run_dir / task).is_dir() else None


def _failed_step(run_dir: Path, error: Exception) -> str:
    """The failing step's own message: what it wrote to ``error.txt`` (else kfp.local's line), and
    where its reports and its log are."""
    from hipo.pipeline.progress import LOGS_DIR

    for path in sorted(run_dir.glob("*/error.txt"), key=lambda p: p.stat().st_mtime):
        step = path.parent
        lines = [f"step {step.name} failed: {path.read_text(encoding='utf-8').strip()}"]
        lines += [f"  its report: {report}" for report in sorted(step.glob("*.html"))]
        log = run_dir / LOGS_DIR / f"{step.name}.log"
        return "\n".join(lines + ([f"  its log: {log}"] if log.is_file() else []))
    return str(error)


def _config_yaml(config: RunConfig) -> str:
    """The full configuration for the ``config_yaml`` parameter, or "" where the typed pipeline
    parameters already say everything (keeps the step logs short)."""
    return "" if to_config(from_config(config)) == config else config.to_yaml()


class _PipelineMlflowRun:
    """The pipeline run's MLflow run: created before the steps start (they nest under it through
    HIPO_MLFLOW_PARENT_RUN_ID), named like the artifacts folder once kfp.local has made it."""

    def __init__(self, config: RunConfig) -> None:
        from hipo.registry.client import connect, experiment_id

        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating tables..."
        self.client = connect(config.registry.tracking_uri)
        experiment = experiment_id(self.client, config.registry.experiment)
        tags = {"config_hash": config.config_hash()}
        self.run_id = self.client.create_run(experiment, run_name="hipo run", tags=tags).info.run_id

    def name(self, run_dir: Path) -> None:
        self.client.update_run(self.run_id, name=run_dir.name)
        self.client.set_tag(self.run_id, "artifacts", str(run_dir))

    def finish(self, run_dir: Path | None, succeeded: bool) -> None:
        """Attach the run summary and end the run; a step stopped mid-way leaves its run RUNNING, so
        the nested runs still running are ended as FAILED too."""
        summary = run_dir / "run-summary" / "summary" if run_dir else None
        if summary is not None and summary.is_file():
            self.client.log_text(self.run_id, summary.read_text(encoding="utf-8"), "run-summary.md")
        if not succeeded:
            experiment = self.client.get_run(self.run_id).info.experiment_id
            nested = f"tags.mlflow.parentRunId = '{self.run_id}' and attributes.status = 'RUNNING'"
            for child in self.client.search_runs([experiment], nested):
                self.client.set_terminated(child.info.run_id, "FAILED")
        self.client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in os.environ for the block: the kfp.local steps are subprocesses that inherit it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def run_local(
    config: RunConfig,
    out_dir: str | Path,
    arms: str = "hipo",
    verbose: bool = False,
    out: TextIO | None = None,
) -> LocalRun:
    """Run the pipeline with kfp.local into ``out_dir``; raises PipelineFailed naming the failed step.

    The progress view (or with ``verbose`` kfp.local's whole output) goes to ``out`` (default stderr).
    Everything a step produced before a failure stays under ``out_dir/artifacts``.
    """
    from kfp import local

    from hipo.pipeline.progress import ProgressView
    from hipo.pipeline.run_record import seconds_text
    from pipelines.hipo_pipeline import ARMS, hipo_pipeline

    if arms not in ARMS:
        raise ConfigError(f"--arms must be one of {ARMS}, got {arms!r}")
    out = out or sys.stderr
    config = local_config(config)
    root = Path(out_dir).resolve() / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    print(f"hipo run: arms {arms}, config {config.config_hash()}", file=out)
    print(f"          registry: {config.registry.tracking_uri}", file=out)
    mlflow_run = _PipelineMlflowRun(config)
    view = ProgressView(root, before, out, verbose=verbose, on_run_dir=mlflow_run.name)
    started = time.perf_counter()
    succeeded = False
    try:
        with (
            _environment(MLFLOW_PARENT_RUN_VARIABLE, mlflow_run.run_id),
            contextlib.redirect_stdout(view),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", "Task .* have no effect in the current local runner")
            hipo_pipeline(**from_config(config), arms=arms, config_yaml=_config_yaml(config))
        succeeded = True
    except RuntimeError as error:
        raise PipelineFailed(_failed_step(view.run_dir, error) if view.run_dir else str(error)) from None
    except KeyboardInterrupt:
        kept = f"; the finished steps' outputs stay in {view.run_dir}" if view.run_dir else ""
        raise PipelineFailed(f"interrupted during step {view.task or 'start-up'}{kept}") from None
    finally:
        view.close()
        mlflow_run.finish(view.run_dir, succeeded)
    print(f"hipo run: finished in {seconds_text(time.perf_counter() - started)}", file=out)
    return _collect(view, config, arms, mlflow_run.run_id)


def _collect(view: ProgressView, config: RunConfig, arms: str, mlflow_run_id: str) -> LocalRun:
    from hipo.pipeline.run_record import component_dir
    from hipo.registry import describe

    run_dir = view.run_dir
    results = _task_dir(run_dir, "evaluate")
    if results is None:
        raise PipelineFailed(f"no evaluate step output under {run_dir}")
    register = component_dir(run_dir, "register")
    if register is None:
        raise PipelineFailed(f"no register step output under {run_dir}")
    registered = json.loads((register / "executor_output.json").read_text())
    number = str(registered["parameterValues"]["Output"])
    uri = config.registry.tracking_uri
    summary = describe(config.registry.model_name, tracking_uri=uri)
    aliases = next((v.aliases for v in summary.versions if v.version == number), ())
    other = _task_dir(run_dir, "compare-arms" if arms == "all" else "evaluate-2") if arms != "hipo" else None
    return LocalRun(
        run_dir=run_dir,
        summary=(results / "results" / "summary.md").read_text(encoding="utf-8"),
        report=results / "report.html",
        model_name=config.registry.model_name,
        version=number,
        aliases=tuple(aliases),
        comparison=other / "report.html" if other else None,
        comparison_summary=(other / "results" / "summary.md").read_text(encoding="utf-8") if other else "",
        tracking_uri=uri,
        mlflow_run_id=mlflow_run_id,
        logs=view.logs_dir,
    )
