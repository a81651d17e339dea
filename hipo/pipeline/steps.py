"""The pipeline's steps, one function each, on plain paths: what the KFP components call.

Every step reads the run configuration that ``prepare`` wrote (``config.yaml``), so one typed
configuration flows through the DAG. Each function works without KFP too::

    config = prepare({"rl_steps": 20}, "", [], "out/config", "out/prompts")
    generate_hybrid_data("out/config", "out/prompts", "out/data")
    ...
"""

from __future__ import annotations

import functools
import inspect
import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hipo.config import RunConfig, load_config, parse_yaml
from hipo.pipeline.run_record import ERROR_FILE, STEP_FILE
from hipo.tasks.base import Problem

if TYPE_CHECKING:
    from hipo.evaluate.metrics import EvalResult

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_FILE = "config.yaml"
PROMPTS_FILE = "prompts.jsonl"
ARM_NAMES = {
    ("on", "none"): "Cold-Start (on)",
    ("on", "grpo"): "Cold-Start (on)+GRPO",
    ("mix", "none"): "Cold-Start (mix)",
    ("mix", "grpo"): "Cold-Start (mix)+GRPO",
    ("mix", "hipo"): "Cold-Start (mix)+HiPO",
}


def records_outcome(output: str) -> Callable[[F], F]:
    """Record the step in its folder (the parent of its ``output`` path, under the pipeline root):
    ``step.json`` with its start and duration and, on an exception, ``error.txt`` with the one-line
    message, so a runner can say how each step went and name a failed one (``hipo.pipeline.run_record``)."""

    def wrap(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            where = Path(signature.bind(*args, **kwargs).arguments[output]).parent
            where.mkdir(parents=True, exist_ok=True)
            started, clock = time.time(), time.perf_counter()
            (where / STEP_FILE).write_text(json.dumps({"started": started}), encoding="utf-8")
            try:
                return func(*args, **kwargs)
            except Exception as error:
                (where / ERROR_FILE).write_text(f"{type(error).__name__}: {error}\n", encoding="utf-8")
                raise
            finally:
                record = {"started": started, "seconds": time.perf_counter() - clock}
                (where / STEP_FILE).write_text(json.dumps(record), encoding="utf-8")

        return run  # type: ignore[return-value]

    return wrap


def _html_twin(path: str | Path) -> None:
    """Copy an HTML artifact to ``<path>.html`` beside it: KFP names the file without a suffix, and
    a browser renders only the twin."""
    shutil.copyfile(path, f"{path}.html")


def read_config(config_dir: str | Path) -> RunConfig:
    return load_config(Path(config_dir) / CONFIG_FILE)


def rl_arm_name(config_dir: str | Path) -> str:
    """The comparison-table name of the main line's RL policy, e.g. "Cold-Start (mix)+HiPO"."""
    return ARM_NAMES[("mix", read_config(config_dir).rl.algorithm)]


@records_outcome("config_dir")
def prepare(
    parameters: dict[str, Any], config_yaml: str, overrides: list[str], config_dir: str, prompts_dir: str
) -> dict[str, int]:
    """Build the run configuration (``config_yaml`` as the base, then the typed pipeline parameters,
    then free ``section.field=value`` overrides), write it, and draw the train/eval prompts."""
    from hipo.data.pipeline import split_queries
    from hipo.launch import preflight
    from hipo.pipeline.parameters import to_config
    from hipo.tasks import task_from_config

    base = parse_yaml(config_yaml) if config_yaml.strip() else {}
    config = to_config(parameters, base, overrides)
    preflight(config)
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    (Path(config_dir) / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    queries, dropped = split_queries(task_from_config(config.task), config)
    Path(prompts_dir).mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"split": split, **asdict(problem)}) for split, problem in queries]
    (Path(prompts_dir) / PROMPTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = {split: sum(s == split for s, _ in queries) for split in ("train", "eval")}
    print(
        f"prepare: config {config.config_hash()}, {counts['train']} train and {counts['eval']} eval prompts"
    )
    return {
        "train_prompts": counts["train"],
        "eval_prompts": counts["eval"],
        "dropped": sum(dropped.values()),
    }


def stage_base_model(config_dir: str, staged_dir: str) -> None:
    """The run configuration, with a Hub base model copied once to object storage where the training
    runs on a cluster (``hipo.launch.base_model``), written to ``staged_dir``."""
    from hipo.launch.base_model import stage_base_model as stage

    config = stage(read_config(config_dir))
    Path(staged_dir).mkdir(parents=True, exist_ok=True)
    (Path(staged_dir) / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    print(f"stage-base-model: model.base {config.model.base}")


def _queries(prompts_dir: str | Path) -> list[tuple[str, Problem]]:
    rows = [json.loads(line) for line in Path(prompts_dir, PROMPTS_FILE).read_text().splitlines() if line]
    return [(row.pop("split"), Problem(**row)) for row in rows]


@records_outcome("dataset_dir")
def generate_hybrid_data(config_dir: str, prompts_dir: str, dataset_dir: str) -> dict[str, float]:
    """Teacher samples in both modes, verification, mode choice and rationales → Cold-Start datasets."""
    from hipo.data.run import generate

    stats = generate(read_config(config_dir), dataset_dir, queries=_queries(prompts_dir))
    train = stats["splits"]["train"]
    return {
        "queries": float(stats["queries"]),
        "train_rows": float(train["rows"]),
        "think_on_share": float(train["think_on_share"]),
        "dropped": float(sum(stats["dropped"].values())),
    }


@records_outcome("report_html")
def validate_data(config_dir: str, dataset_dir: str, report_html: str) -> dict[str, float]:
    """The quality gate over the Cold-Start (mix) set; writes the report, raises GateFailed on failure."""
    from hipo.quality import check, validate_dataset

    result = validate_dataset(Path(dataset_dir) / "mix", read_config(config_dir).quality)
    Path(report_html).write_text(result.html(), encoding="utf-8")
    _html_twin(report_html)
    check(result)
    return {"expectations": float(len(result.checks)), "failed": float(len(result.failures))}


def _train(
    stage: str,
    source: str,
    config: RunConfig,
    work_dir: Path,
    run_id: str,
    task_config: Any,
    task: str,
    run_name: str = "",
) -> Path:
    """Train ``stage`` from ``source`` where ``config.launch`` says; returns the final model directory.
    ``task`` (the arm) keeps the cluster jobs of different arms apart; ``run_name``: RL's MLflow run."""
    from hipo.launch import run_training

    return run_training(stage, source, config, work_dir, run_id, task_config, task=task, run_name=run_name)


def _last_metrics(path: Path) -> dict[str, float]:
    """The numeric values of the last row of a training ``metrics.jsonl`` (empty when there is none)."""
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    last = json.loads(lines[-1]) if lines else {}
    return {k: float(v) for k, v in last.items() if isinstance(v, int | float) and not isinstance(v, bool)}


@records_outcome("model_dir")
def sft(
    config_dir: str, dataset_dir: str, dataset: str, model_dir: str, run_id: str, task_config: Any = None
) -> dict[str, float]:
    """Cold-start SFT of the base model on the ``dataset`` ("mix" or "on") Cold-Start set
    (``sft.steps_on`` steps for "on" where set)."""
    data = str(Path(dataset_dir) / dataset)
    config = read_config(config_dir)
    if dataset == "on" and config.sft.steps_on:
        sft_on = config.sft.model_copy(update={"steps": config.sft.steps_on})
        config = config.model_copy(update={"sft": sft_on})
    final = _train("sft", data, config, Path(model_dir), run_id, task_config, dataset)
    return _last_metrics(final / "metrics.jsonl")


@records_outcome("model_dir")
def hipo_rl(
    config_dir: str,
    policy_dir: str,
    algorithm: str,
    model_dir: str,
    run_id: str,
    task_config: Any = None,
    cold_start_set: str = "mix",
) -> dict[str, float]:
    """RL from the cold-start policy (trained on ``cold_start_set``) with ``algorithm`` ("hipo" or
    "grpo"; "none" passes the policy through, the Cold-Start rows of the comparison). Checkpoints stay
    in a ``work`` folder beside the model, so a retried step resumes; the final policy is copied to
    ``model_dir``."""
    from hipo.train.metrics import rl_run_name

    if algorithm == "none":
        shutil.copytree(policy_dir, model_dir, dirs_exist_ok=True)
        return {}
    config = read_config(config_dir)
    config = config.model_copy(update={"rl": config.rl.model_copy(update={"algorithm": algorithm})})
    work = Path(model_dir).parent / f"work-{algorithm}"
    arm, name = f"{cold_start_set}-{algorithm}", rl_run_name(algorithm, cold_start_set)
    final = _train("rl", policy_dir, config, work, run_id, task_config, arm, name)
    shutil.copytree(final, model_dir, dirs_exist_ok=True)
    return _last_metrics(work / "metrics.jsonl")


@records_outcome("results_dir")
def evaluate(
    config_dir: str,
    models: dict[str, str],
    dataset_dir: str,
    results_dir: str,
    baseline: str,
    report_html: str | None = None,
    summary_md: str | None = None,
    title: str = "HiPO evaluation",
    earlier_dir: str | None = None,
    run_id: str = "",
    task_config: Any = None,
) -> dict[str, float]:
    """Benchmark ``{display name: model dir}`` into ``results_dir``; the last one in the paper's row
    order is the primary model whose metrics (and changes relative to ``baseline``) are returned and
    gated. The report and summary are also copied to ``report_html`` / ``summary_md`` when given.
    ``earlier_dir``: an earlier evaluate step's results; models it scored are not scored again.
    With vLLM on a cluster backend the evaluation runs as a job of the run ``run_id`` on the train
    image (``task_config`` as for training), and its results come back into ``results_dir``."""
    from hipo.evaluate.compare import evaluate_models, slug
    from hipo.launch import evaluates_in_a_job, run_evaluation

    labels = Path(dataset_dir) / "mix"
    config = read_config(config_dir)
    settings = {"labels": labels, "title": title, "baseline": baseline, "earlier": earlier_dir}
    if evaluates_in_a_job(config):
        task = f"vs-{slug(baseline)}" if len(models) == 2 else f"{len(models)}-models"
        run_evaluation(models, config, results_dir, run_id, task_config, task=task, **settings)
        files = {
            name: str(Path(results_dir) / name) for name in ("report.html", "summary.md", "metrics.json")
        }
    else:
        _, files = evaluate_models(config, models, results_dir, **settings)
    for source, target in ((files["report.html"], report_html), (files["summary.md"], summary_md)):
        if target:
            shutil.copyfile(source, target)
    if report_html:
        _html_twin(report_html)
    print(Path(files["summary.md"]).read_text(encoding="utf-8"))
    return json.loads(Path(files["metrics.json"]).read_text())


def arm_results(results_dir: str | Path) -> dict[str, EvalResult]:
    """Every arm's result from a compare-arms results folder (its ``models/<slug>/samples.jsonl``)."""
    from hipo.evaluate.compare import slug
    from hipo.evaluate.runner import load_result

    return {name: load_result(Path(results_dir) / "models" / slug(name), name) for name in ARM_NAMES.values()}


def scored_arms(results_dir: str | Path, names: Iterable[str] | None = None) -> dict[str, EvalResult]:
    """The results of the arms (among ``names``, default all five) that an evaluation's results folder
    scored."""
    from hipo.evaluate.compare import slug
    from hipo.evaluate.runner import SAMPLES_FILE, load_result

    folders = {name: Path(results_dir) / "models" / slug(name) for name in names or ARM_NAMES.values()}
    return {
        name: load_result(folder, name)
        for name, folder in folders.items()
        if (folder / SAMPLES_FILE).is_file()
    }


@records_outcome("results_dir")
def compare_arms(
    config_dir: str,
    dataset_dir: str,
    arm_dirs: list[str],
    results_dir: str,
    report_html: str,
    summary_md: str,
    earlier_dir: str | None = None,
    run_id: str = "",
    task_config: Any = None,
) -> dict[str, float]:
    """The paper's five arms (``arm_dirs`` in ``ARM_NAMES`` order) scored side by side, relative to
    Cold-Start (on). Returns the HiPO arm's metrics and the whole table as ``comparison/<arm>/<column>``
    (``register`` attaches the table to the registered version).
    ``earlier_dir``: the evaluate step's results, whose two models are not scored again."""
    from hipo.evaluate.table import comparison_table, table_metrics

    models = dict(zip(ARM_NAMES.values(), arm_dirs, strict=True))
    baseline = ARM_NAMES[("on", "none")]
    values = evaluate(
        config_dir, models, dataset_dir, results_dir, baseline, report_html, summary_md,
        earlier_dir=earlier_dir, run_id=run_id, task_config=task_config,
    )  # fmt: skip
    table = table_metrics(comparison_table(arm_results(results_dir), baseline))
    return {**values, **table}


def cold_start_metrics(*results_dirs: str | Path) -> dict[str, dict[str, float]]:
    """``{arm: flat metrics}`` of the cold-start arms the evaluations' results folders scored: the
    baselines the gate holds a first champion against."""
    names = [ARM_NAMES[(dataset, "none")] for dataset in ("mix", "on")]
    return {
        name: result.flat_metrics()
        for results_dir in results_dirs
        for name, result in scored_arms(results_dir, names).items()
    }


def _attach_comparison(config: RunConfig, version: str, comparison_dir: Path) -> None:
    """The comparison table of the arms ``comparison_dir`` scored, relative to Cold-Start (on), and its
    report, logged to the MLflow run of ``version`` under ``comparison``."""
    from hipo.evaluate.table import comparison_table, table_metrics
    from hipo.registry import attach_to_version

    table = table_metrics(comparison_table(scored_arms(comparison_dir), ARM_NAMES[("on", "none")]))
    files = [comparison_dir / name for name in ("report.html", "summary.md")]
    registry = config.registry
    attach_to_version(
        registry.model_name, version, table, files,
        artifact_path="comparison", tracking_uri=registry.tracking_uri or None,
    )  # fmt: skip


@records_outcome("card_md")
def register(
    config_dir: str,
    model_dir: str,
    results_dir: str,
    run_id: str,
    data_uri: str,
    card_md: str,
    comparison_dir: str | None = None,
) -> str:
    """Register the policy as a new version (alias ``challenger``) with the evaluation's metrics and
    reports, and the cold starts it scored as the gate's baselines; returns the version. Idempotent
    per pipeline run, so a retried step registers once. ``comparison_dir``: the run's later evaluation
    against Cold-Start (on) (the second evaluation, or the five arms): its cold starts are baselines
    too, and its table and report go to the version's MLflow run under ``comparison``."""
    from hipo.registry import register as register_version

    config = read_config(config_dir)
    results = Path(results_dir)
    registration = register_version(
        config,
        json.loads((results / "metrics.json").read_text()),
        model_dir,
        pipeline_run_id=run_id,
        data_uri=data_uri,
        reports=[results / name for name in ("report.html", "summary.md")],
        tracking_uri=config.registry.tracking_uri or None,
        promote=False,
        baselines=cold_start_metrics(results, *([comparison_dir] if comparison_dir else [])),
    )
    card = [
        f"# {registration.name} v{registration.version} (challenger)",
        "",
        f"- MLflow run: {registration.run_id}",
    ]
    if comparison_dir:
        _attach_comparison(config, registration.version, Path(comparison_dir))
        card.append("- the comparison with Cold-Start (on): the MLflow run's `comparison/`")
    Path(card_md).write_text("\n".join(card) + "\n", encoding="utf-8")
    print(f"register: {registration.name} v{registration.version} (challenger)")
    return str(registration.version)


@records_outcome("card_md")
def gate(config_dir: str, version: str, card_md: str) -> bool:
    """The promotion gate: may ``version`` replace the champion? Writes the decision and its reasons."""
    from hipo.registry import gate_version

    registry = read_config(config_dir).registry
    decision = gate_version(
        registry.model_name, version, registry, tracking_uri=registry.tracking_uri or None
    )
    against = f"champion v{decision.compared_to}" if decision.compared_to else "the run's cold starts"
    card = [
        f"# Gate: {'passed' if decision.passed else 'rejected'}",
        "",
        f"{registry.model_name} v{version} against {against}:",
        *(f"- {reason}" for reason in decision.reasons),
    ]
    Path(card_md).write_text("\n".join(card) + "\n", encoding="utf-8")
    print("gate: " + "\n".join(card))
    return decision.passed


@records_outcome("card_md")
def promote(config_dir: str, version: str, card_md: str) -> str:
    """Make the version the gate passed the ``champion``; returns a line saying so."""
    from hipo.registry import promote_challenger

    registry = read_config(config_dir).registry
    name = registry.model_name
    previous = promote_challenger(name, version, tracking_uri=registry.tracking_uri or None)
    line = f"{name} v{version} is the champion" + (f" (was v{previous})" if previous else "")
    Path(card_md).write_text(f"# Promoted\n\n{line}\n", encoding="utf-8")
    print(f"promote: {line}")
    return line


def _mlflow_lines(run_dir: Path) -> list[str]:
    """Where the run's MLflow records are: the pipeline run's MLflow run, the registered version."""
    from hipo.config import mlflow_parent_run_id, mlflow_tracking_uri
    from hipo.pipeline.run_record import component_dir, registration_run

    config_dir = run_dir / "prepare" / "config"
    if not (config_dir / CONFIG_FILE).is_file():
        return []
    registry = read_config(config_dir).registry
    uri = registry.tracking_uri or mlflow_tracking_uri() or "the default registry"
    lines = []
    if parent := mlflow_parent_run_id():
        lines.append(f"- MLflow run: `{run_dir.name}` ({parent}), experiment `{registry.experiment}`, {uri}")
    register = component_dir(run_dir, "register")
    if register and (register / "executor_output.json").is_file():
        version = json.loads((register / "executor_output.json").read_text())["parameterValues"]["Output"]
        run_id = registration_run(run_dir)
        lines.append(f"- model: {registry.model_name} v{version} (registered by MLflow run {run_id})")
    return lines


def run_summary(status: dict[str, Any], summary_md: str) -> str:
    """The exit handler's summary: how the run ended (on failure, which step and why) and, where the
    step folders are in reach (a local run), every step's status, duration, key metrics and
    artifacts, the pipeline run's MLflow run and the registered model version."""
    from hipo.pipeline.run_record import artifact_lines, run_outcomes, steps_table

    state = str(status.get("state", "UNKNOWN"))
    task_dir = Path(summary_md).parent
    outcomes = run_outcomes(task_dir.parent, exclude=(task_dir.name,))
    run = task_dir.parent.name if outcomes else status.get("pipeline_job_resource_name", "")
    lines = [f"# HiPO pipeline run: {state}", "", f"- run: {run}"]
    if status.get("error_message"):
        lines += [f"- error code: {status.get('error_code')}", f"- error: {status['error_message']}"]
    if outcomes:
        lines += [*_mlflow_lines(task_dir.parent), "", "## Steps", "", *steps_table(outcomes)]
        lines += ["", "## Artifacts", "", *artifact_lines(outcomes)]
    text = "\n".join(lines) + "\n"
    Path(summary_md).write_text(text, encoding="utf-8")
    print(text, end="")
    return state
