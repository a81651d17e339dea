"""The whole DAG through kfp.local with the smallest settings: what `hipo run` and `make demo` do."""

from __future__ import annotations

import json

import pytest

from hipo.config import build_config
from hipo.pipeline_run import PipelineFailed, run_local
from hipo.registry import CHALLENGER, CHAMPION, describe
from hipo.steps import ARM_NAMES

SMALL = [
    "task.train_size=200",
    "task.eval_size=20",
    "eval.max_problems=10",
    "sft.steps=4",
    "sft.eval_every=4",
    "rl.steps=2",
    "rl.prompts_per_step=4",
    "rl.group_size=4",
    "registry.max_format_failure_rate=1.0",  # a policy trained for seconds formats badly: let it pass
    "registry.max_accuracy_drop_vs_baseline=1.0",  # and answers by chance: HiPO may lose to its cold start
]


def test_the_dag_runs_locally_registers_and_promotes(tmp_path, capsys):
    config = build_config({}, SMALL)
    run = run_local(config, tmp_path / "run", arms="baseline")  # what make demo runs

    steps = {p.name for p in run.run_dir.iterdir()}
    expected = {"prepare", "generate-hybrid-data", "validate-data", "sft", "hipo-rl", "evaluate", "register"}
    assert expected | {"gate", "promote", "run-summary"} <= steps
    assert "Cold-Start (mix)+HiPO" in run.summary and "Cold-Start (mix)" in run.summary
    assert run.report.read_text().startswith("<!DOCTYPE html>")
    # the first version of a model has no champion to lose against: the gate passes, promote runs
    assert run.version == "1" and set(run.aliases) == {CHALLENGER, CHAMPION}
    summary = describe(config.registry.model_name, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [v.version for v in summary.versions] == ["1"]
    assert (run.run_dir / "run-summary" / "summary").read_text().startswith("# HiPO pipeline run: SUCCEEDED")
    # one configuration flowed through the steps: the sft and rl settings the run asked for
    prepared = (run.run_dir / "prepare" / "config" / "config.yaml").read_text()
    assert "steps: 4" in prepared and "tracking_uri: sqlite:///" in prepared
    gate = json.loads((run.run_dir / "gate" / "executor_output.json").read_text())
    assert gate["parameterValues"]["Output"] is True
    card = (run.run_dir / "gate" / "card").read_text()
    assert card.startswith("# Gate: passed") and "against the run's cold starts:" in card
    assert "arithmetic/accuracy" in card and "vs Cold-Start (mix)" in card  # the evaluation's cold start
    assert "is the champion" in (run.run_dir / "promote" / "card").read_text()
    # the second evaluation scores Cold-Start (on) and copies the policy's samples from the first
    assert "Cold-Start (on)" in run.comparison_summary and "Cold-Start (mix)+HiPO" in run.comparison_summary
    records = scored_records(run.run_dir / "evaluate-2")
    assert "copied_from" not in records["Cold-Start-on"]
    assert records["Cold-Start-mix-HiPO"]["copied_from"].startswith(str(run.run_dir / "evaluate" / "results"))


def test_five_arms_write_the_table_to_the_report_metrics_and_registry_run(tmp_path):
    from mlflow import MlflowClient

    config = build_config({}, SMALL)
    run = run_local(config, tmp_path / "run", arms="all")
    rows = [
        line.split("|")[1].strip() for line in run.comparison_summary.splitlines() if line.startswith("| C")
    ]
    assert rows[:5] == list(ARM_NAMES.values())  # the paper's five rows, in its order
    assert run.comparison is not None and "Cold-Start (on)+GRPO" in run.comparison.read_text()
    kfp_metrics = json.loads((run.run_dir / "compare-arms" / "executor_output.json").read_text())
    assert "comparison/Cold-Start-on-GRPO/tokens_rel" in json.dumps(kfp_metrics)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    version = client.get_model_version(config.registry.model_name, run.version)
    logged = client.get_run(version.run_id).data.metrics
    assert logged["comparison/Cold-Start-on/tokens_rel"] == 0.0  # the baseline row, relative to itself
    assert {"comparison/Cold-Start-mix-HiPO/think_rate", "comparison/Cold-Start-mix-GRPO/tokens"} <= set(
        logged
    )
    paths = {a.path for a in client.list_artifacts(version.run_id, "comparison")}
    assert paths == {"comparison/report.html", "comparison/summary.md"}
    # the models the evaluate step scored are copied from it (and so is mix+GRPO whenever two RL steps
    # leave its files equal to one of them); the Cold-Start (on) arms are scored here
    records = scored_records(run.run_dir / "compare-arms")
    copied = {name for name, record in records.items() if "copied_from" in record}
    assert copied - {"Cold-Start-mix-GRPO"} == {"Cold-Start-mix", "Cold-Start-mix-HiPO"}
    assert len(records) == 5
    earlier = {record["model"] for record in scored_records(run.run_dir / "evaluate").values()}
    assert {records[name]["model"] for name in copied} == earlier


def scored_records(step_dir):
    """{model folder: its eval_run.json} of an evaluation step."""
    files = (step_dir / "results" / "models").glob("*/eval_run.json")
    return {path.parent.name: json.loads(path.read_text()) for path in files}


def test_a_failing_step_stops_the_run_with_its_own_message_and_keeps_earlier_work(tmp_path):
    config = build_config({}, [*SMALL, "quality.min_think_on_share=0.97"])
    with pytest.raises(PipelineFailed) as caught:
        run_local(config, tmp_path / "run")
    message = str(caught.value)
    assert message.startswith("step validate-data failed: GateFailed: data-quality gate FAILED")
    assert "think_on_share:train" in message
    run_dir = next((tmp_path / "run" / "artifacts").iterdir())
    assert (run_dir / "generate-hybrid-data" / "dataset" / "mix" / "train.parquet").is_file()
    assert (run_dir / "validate-data" / "report").read_text().lstrip().startswith("<")
    assert not (run_dir / "sft").exists()
    assert "FAILED" in (run_dir / "run-summary" / "summary").read_text()
