"""What each step of a pipeline run did, read back from its folder: status, duration, key metrics and
artifact paths. The progress view of ``hipo run`` and the ``run-summary`` step both read it.

A step's folder (``<run>/<task>``, as kfp.local lays them out) holds ``executor_output.json`` when the
step succeeded, ``error.txt`` when it failed, and ``step.json`` (start and duration) written by the
step itself (``hipo.pipeline.steps``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEP_FILE = "step.json"
ERROR_FILE = "error.txt"
OUTPUT_FILE = "executor_output.json"
# the metrics each component's progress line and summary row show (all of them stay in the artifacts)
KEY_METRICS = {
    "prepare": ("train_prompts", "eval_prompts"),
    "generate-hybrid-data": ("train_rows", "think_on_share"),
    "validate-data": ("expectations", "failed"),
    "sft": ("loss", "eval_loss", "tokens_per_s"),
    "hipo-rl": ("reward_mean", "accuracy", "think_rate"),
    "evaluate": ("accuracy", "tokens", "think_rate"),
    "compare-arms": ("accuracy", "tokens", "think_rate"),
}
_CARD_RUN = re.compile(r"MLflow run: (\w+)")


@dataclass(frozen=True)
class StepOutcome:
    name: str  # the task's folder, e.g. "sft-2"
    status: str  # succeeded, failed, or running (no result yet)
    seconds: float | None
    started: float | None  # epoch seconds
    metrics: dict[str, float] = field(default_factory=dict)  # the key metrics
    result: str = ""  # a step's return value (the registered version, the gate's verdict)
    artifacts: dict[str, str] = field(default_factory=dict)  # output name -> path
    error: str = ""

    def metrics_text(self) -> str:
        parts = [f"{k} {_number(v)}" for k, v in self.metrics.items()]
        return ", ".join([*([self.result] if self.result else []), *parts])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def component(task: str) -> str:
    """The component of a task folder: ``sft-2`` -> ``sft``."""
    return re.sub(r"-\d+$", "", task)


def _browsable(path: str) -> str:
    """An HTML artifact's ``.html`` twin where the step wrote one (a browser renders it)."""
    twin = Path(f"{path}.html")
    return str(twin) if twin.is_file() else path


def _result(task: str, parameters: dict[str, Any]) -> str:
    value = parameters.get("Output")
    if value is None:
        return ""
    if component(task) == "register":
        return f"version {value}"
    if component(task) == "gate":
        return "passed" if value else "rejected"
    return str(value)


def step_outcome(task_dir: Path) -> StepOutcome:
    """What the step in ``task_dir`` did, as far as its files tell."""
    record = json.loads((task_dir / STEP_FILE).read_text()) if (task_dir / STEP_FILE).is_file() else {}
    timing = {"seconds": record.get("seconds"), "started": record.get("started")}
    name = task_dir.name
    if (task_dir / ERROR_FILE).is_file():
        error = (task_dir / ERROR_FILE).read_text(encoding="utf-8").strip()
        return StepOutcome(name, "failed", **timing, error=error)
    if not (task_dir / OUTPUT_FILE).is_file():
        return StepOutcome(name, "running", **timing)
    output = json.loads((task_dir / OUTPUT_FILE).read_text())
    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    for key, entry in output.get("artifacts", {}).items():
        for artifact in entry.get("artifacts", []):
            if key == "metrics":
                metrics.update(artifact.get("metadata", {}))
            else:
                artifacts[key] = _browsable(artifact["uri"])
    keys = KEY_METRICS.get(component(name), ())
    chosen = {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), int | float)}
    result = _result(name, output.get("parameterValues", {}))
    return StepOutcome(name, "succeeded", **timing, metrics=chosen, result=result, artifacts=artifacts)


def run_outcomes(run_dir: Path, exclude: tuple[str, ...] = ()) -> list[StepOutcome]:
    """Every step that started in ``run_dir``, in the order they started."""
    dirs = [d for d in run_dir.iterdir() if d.is_dir() and d.name not in exclude] if run_dir.is_dir() else []
    outcomes = [step_outcome(d) for d in dirs if (d / STEP_FILE).is_file() or (d / OUTPUT_FILE).is_file()]
    return sorted(outcomes, key=lambda o: (o.started is None, o.started or 0.0, o.name))


def component_dir(run_dir: Path, name: str) -> Path | None:
    """The folder of the run's task of component ``name`` (kfp.local names a component's tasks ``name``,
    ``name-2``, ...), the first when there are several; None when it has none. Register, gate and
    promote run once per run, in the branch of its arms, each under its own numbered name."""
    tasks = [d for d in run_dir.glob(f"{name}*") if d.is_dir() and component(d.name) == name]
    return min(tasks, key=lambda d: (len(d.name), d.name), default=None)


def registration_run(run_dir: Path) -> str:
    """The MLflow run that registered the policy (from the register step's card), or ""."""
    task = component_dir(run_dir, "register")
    card = task / "card" if task else None
    found = _CARD_RUN.search(card.read_text(encoding="utf-8")) if card and card.is_file() else None
    return found.group(1) if found else ""


def seconds_text(value: float | None) -> str:
    """``4.2s``, ``12m05s``, or ``–`` when unknown."""
    if value is None:
        return "–"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{value:.1f}s"


def steps_table(outcomes: list[StepOutcome]) -> list[str]:
    """A Markdown table: step, status, duration, key metrics (or the error)."""
    lines = ["| step | status | time | key metrics |", "|:--|:--|--:|:--|"]
    for o in outcomes:
        detail = o.error.replace("|", "\\|").splitlines()[0][:200] if o.error else o.metrics_text()
        lines.append(f"| {o.name} | {o.status} | {seconds_text(o.seconds)} | {detail} |")
    return lines


def artifact_lines(outcomes: list[StepOutcome]) -> list[str]:
    return [
        f"- {o.name}: " + ", ".join(f"{name} `{path}`" for name, path in sorted(o.artifacts.items()))
        for o in outcomes
        if o.artifacts
    ]
