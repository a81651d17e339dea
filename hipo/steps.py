"""The pipeline's steps, one function each, on plain paths: what the KFP components call.

Every step reads the run configuration that ``prepare`` wrote (``config.yaml``), so one typed
configuration flows through the DAG. Each function works without KFP too::

    config = prepare({"rl_steps": 20}, "", [], "out/config", "out/prompts")
    generate_hybrid_data("out/config", "out/prompts", "out/data")
    ...
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from hipo.config import RunConfig, build_config, load_config
from hipo.tasks.base import Problem

CONFIG_FILE = "config.yaml"
PROMPTS_FILE = "prompts.jsonl"
ARM_NAMES = {
    ("on", "none"): "Cold-Start (on)",
    ("on", "grpo"): "Cold-Start (on)+GRPO",
    ("mix", "none"): "Cold-Start (mix)",
    ("mix", "grpo"): "Cold-Start (mix)+GRPO",
    ("mix", "hipo"): "Cold-Start (mix)+HiPO",
}


def read_config(config_dir: str | Path) -> RunConfig:
    return load_config(Path(config_dir) / CONFIG_FILE)


def rl_arm_name(config_dir: str | Path) -> str:
    """The comparison-table name of the main line's RL policy, e.g. "Cold-Start (mix)+HiPO"."""
    return ARM_NAMES[("mix", read_config(config_dir).rl.algorithm)]


def prepare(
    parameters: dict[str, Any], config_yaml: str, overrides: list[str], config_dir: str, prompts_dir: str
) -> dict[str, int]:
    """Build the run configuration (``config_yaml`` as the base, then the pipeline parameters, then
    free ``section.field=value`` overrides), write it, and draw the train/eval prompts."""
    from hipo.data.pipeline import split_queries
    from hipo.parameters import to_overrides
    from hipo.tasks import task_from_config

    values = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    config = build_config(values, [*to_overrides(parameters), *overrides])
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


def _queries(prompts_dir: str | Path) -> list[tuple[str, Problem]]:
    rows = [json.loads(line) for line in Path(prompts_dir, PROMPTS_FILE).read_text().splitlines() if line]
    return [(row.pop("split"), Problem(**row)) for row in rows]


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


def validate_data(config_dir: str, dataset_dir: str, report_html: str) -> dict[str, float]:
    """The quality gate over the Cold-Start (mix) set; writes the report, raises GateFailed on failure."""
    from hipo.quality import check, validate_dataset

    result = validate_dataset(Path(dataset_dir) / "mix", read_config(config_dir).quality)
    Path(report_html).write_text(result.html(), encoding="utf-8")
    check(result)
    return {"expectations": float(len(result.checks)), "failed": float(len(result.failures))}


def _launch(
    stage: str, args: list[str], config_dir: str, model_dir: str, run_id: str, task_config: Any
) -> Path:
    """Run ``hipo train <stage>`` where ``config.launch`` says; returns the directory of the result."""
    from hipo.launch import run_training

    config = read_config(config_dir)
    return run_training(
        stage,
        ["--config", str(Path(config_dir) / CONFIG_FILE), *args],
        config,
        model_dir,
        run_id,
        task_config,
    )


def sft(
    config_dir: str, dataset_dir: str, dataset: str, model_dir: str, run_id: str, task_config: Any = None
) -> dict[str, float]:
    """Cold-start SFT of the base model on the ``dataset`` ("mix" or "on") Cold-Start set."""
    result = _launch(
        "sft", ["--data", str(Path(dataset_dir) / dataset)], config_dir, model_dir, run_id, task_config
    )
    metrics_file = Path(result) / "metrics.json"
    if metrics_file.is_file():
        return {k: float(v) for k, v in json.loads(metrics_file.read_text()).items() if _number(v)}
    return {}


def hipo_rl(
    config_dir: str, policy_dir: str, algorithm: str, model_dir: str, run_id: str, task_config: Any = None
) -> dict[str, float]:
    """RL from the cold-start policy: ``algorithm`` "hipo" or "grpo"; "none" passes the policy through
    (the Cold-Start rows of the comparison)."""
    if algorithm == "none":
        shutil.copytree(policy_dir, model_dir, dirs_exist_ok=True)
        return {}
    args = ["--set", f"rl.algorithm={algorithm}", "--policy", policy_dir]
    result = _launch("rl", args, config_dir, model_dir, run_id, task_config)
    metrics_file = Path(result) / "metrics.json"
    if metrics_file.is_file():
        return {k: float(v) for k, v in json.loads(metrics_file.read_text()).items() if _number(v)}
    return {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def evaluate(
    config_dir: str,
    models: dict[str, str],
    dataset_dir: str,
    results_dir: str,
    baseline: str,
    report_html: str | None = None,
    summary_md: str | None = None,
    title: str = "HiPO evaluation",
) -> dict[str, float]:
    """Benchmark ``{display name: model dir}`` into ``results_dir``; the last one in the paper's row
    order is the primary model whose metrics (and changes relative to ``baseline``) are returned and
    gated. The report and summary are also copied to ``report_html`` / ``summary_md`` when given."""
    from hipo.evaluate.compare import evaluate_models

    labels = Path(dataset_dir) / "mix"
    _, files = evaluate_models(
        read_config(config_dir), models, results_dir, labels=labels, title=title, baseline=baseline
    )
    for source, target in ((files["report.html"], report_html), (files["summary.md"], summary_md)):
        if target:
            shutil.copyfile(source, target)
    print(Path(files["summary.md"]).read_text(encoding="utf-8"))
    return json.loads(Path(files["metrics.json"]).read_text())


def register(config_dir: str, model_dir: str, results_dir: str, run_id: str, data_uri: str) -> dict[str, Any]:
    """Register the policy as a new version (alias ``challenger``) with the evaluation's metrics and
    reports, and record the gate's decision; promotion to ``champion`` is the :func:`promote` step."""
    from hipo.registry import register as register_version

    config = read_config(config_dir)
    results = Path(results_dir)
    metrics = json.loads((results / "metrics.json").read_text())
    reports = [results / name for name in ("report.html", "summary.md")]
    registration = register_version(
        config,
        metrics,
        model_dir,
        pipeline_run_id=run_id,
        data_uri=data_uri,
        reports=reports,
        tracking_uri=config.registry.tracking_uri or None,
        promote=False,
    )
    print(
        f"register: {registration.name} v{registration.version} (challenger), gate "
        f"{'passed' if registration.gate.passed else 'rejected'}: {'; '.join(registration.gate.reasons)}"
    )
    return {"version": registration.version, "passed": registration.gate.passed, "name": registration.name}


def promote(config_dir: str, version: str) -> str:
    """Make the version the gate passed the ``champion``; returns a line saying so."""
    from hipo.registry import promote_challenger

    registry = read_config(config_dir).registry
    name = registry.model_name
    previous = promote_challenger(name, version, tracking_uri=registry.tracking_uri or None)
    line = f"promote: {name} v{version} is the champion" + (f" (was v{previous})" if previous else "")
    print(line)
    return line


def run_summary(status: dict[str, Any], summary_md: str) -> str:
    """The exit handler's summary: how the run ended and, on failure, which step and why."""
    state = str(status.get("state", "UNKNOWN"))
    lines = [f"# HiPO pipeline run: {state}", "", f"- run: {status.get('pipeline_job_resource_name', '')}"]
    if status.get("error_message"):
        lines += [f"- error code: {status.get('error_code')}", f"- error: {status['error_message']}"]
    text = "\n".join(lines) + "\n"
    Path(summary_md).write_text(text, encoding="utf-8")
    print(text, end="")
    return state
