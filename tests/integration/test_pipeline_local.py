"""The whole DAG through kfp.local with the smallest settings: what `hipo run` and `make demo` do."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from hipo.cli import main
from hipo.config import build_config
from hipo.pipeline.run import PipelineFailed, run_local
from hipo.pipeline.steps import ARM_NAMES

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


@pytest.fixture(autouse=True)
def working_dir(tmp_path, monkeypatch):
    """Each test in its own working directory: the local registry is runs/mlflow.db there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def printed_path(text, label):
    """The path a `hipo` output line ``label: PATH`` names."""
    return Path(re.search(rf"^{label}: (\S+)", text, re.MULTILINE).group(1))


def test_the_dag_runs_locally_registers_and_promotes(tmp_path, capsys):
    sets = [arg for field in SMALL for arg in ("--set", field)]
    assert main(["run", *sets, "--arms", "baseline", "--out", "runs/demo"]) == 0  # what make demo runs
    out, progress = capsys.readouterr()
    run_dir = printed_path(out, "artifacts")

    steps = {p.name for p in run_dir.iterdir()}
    expected = {"prepare", "generate-hybrid-data", "validate-data", "sft", "hipo-rl", "evaluate", "sft-2"}
    # register, gate and promote run in the arms branch, after the evaluation against Cold-Start (on)
    assert expected | {"evaluate-2", "register-2", "gate-2", "promote-2", "run-summary"} <= steps
    assert "| Cold-Start (mix)+HiPO |" in out and "| Cold-Start (mix)      |" in out
    # every path printed opens in a browser: a folder, or a report whose name ends in .html
    paths = [Path(p) for p in re.findall(r"^[\w ]+: (/\S+)$", out, re.MULTILINE)]
    assert {printed_path(out, "report").name, printed_path(out, "comparison report").name} == {"report.html"}
    assert len(paths) == 4 and all(p.is_dir() or (p.suffix == ".html" and p.is_file()) for p in paths)
    assert printed_path(out, "report").read_text().startswith("<!DOCTYPE html>")
    # the first version of a model has no champion to lose against: the gate passes, promote runs
    assert "registered model: hipo-policy v1 (aliases: challenger, champion)" in out
    assert_registry_in_working_dir(tmp_path, progress, capsys)
    assert_progress_view_and_step_logs(progress, run_dir)
    assert_run_summary(run_dir)
    # one configuration flowed through the steps: the sft and rl settings the run asked for
    prepared = (run_dir / "prepare" / "config" / "config.yaml").read_text()
    assert "steps: 4" in prepared and "tracking_uri: sqlite:///" in prepared
    gate = json.loads((run_dir / "gate-2" / "executor_output.json").read_text())
    assert gate["parameterValues"]["Output"] is True
    assert_gate_held_against_both_cold_starts(run_dir, tmp_path)
    assert "is the champion" in (run_dir / "promote-2" / "card").read_text()
    # the second evaluation scores Cold-Start (on) and copies the policy's samples from the first
    assert "Δ relative to Cold-Start (on)" in out
    records = scored_records(run_dir / "evaluate-2")
    assert "copied_from" not in records["Cold-Start-on"]
    assert records["Cold-Start-mix-HiPO"]["copied_from"].startswith(str(run_dir / "evaluate" / "results"))


def assert_gate_held_against_both_cold_starts(run_dir, tmp_path):
    """With no champion yet the gate held the policy against both cold starts the run evaluated: its
    own (the first evaluation) and Cold-Start (on) (the second); the version records both."""
    from mlflow import MlflowClient

    card = (run_dir / "gate-2" / "card").read_text()
    assert card.startswith("# Gate: passed") and "against the run's cold starts:" in card
    reasons = [line for line in card.splitlines() if line.startswith("- arithmetic/accuracy")]
    assert len(reasons) == 2
    assert "vs Cold-Start (mix)" in reasons[0] and "vs Cold-Start (on)" in reasons[1]
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    version = client.get_model_version("hipo-policy", "1")
    assert set(json.loads(version.tags["gate.baselines"])) == {"Cold-Start (mix)", "Cold-Start (on)"}
    assert version.tags["gate.reasons"].splitlines()[-2:] == [r.removeprefix("- ") for r in reasons]
    # the comparison against Cold-Start (on) is on the version's run, as the five arms' table is
    paths = {a.path for a in client.list_artifacts(version.run_id, "comparison")}
    assert paths == {"comparison/report.html", "comparison/summary.md"}
    assert client.get_run(version.run_id).data.metrics["comparison/Cold-Start-on/tokens_rel"] == 0.0


def assert_registry_in_working_dir(tmp_path, progress, capsys):
    """The run registered in runs/mlflow.db of the working directory, which `hipo models` reads from
    there; no stray store anywhere else."""
    db = tmp_path / "runs" / "mlflow.db"
    assert f"registry: sqlite:///{db}" in progress
    assert main(["models", "hipo-policy"]) == 0
    listing = capsys.readouterr()
    assert f"registry: sqlite:///{db}" in listing.err and "champion v1" in listing.out
    stores = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name in ("mlflow.db", "mlruns")}
    assert stores == {Path("runs/mlflow.db")}


def assert_progress_view_and_step_logs(progress, run_dir):
    """A line per step started and ended (with its time and key metrics), no kfp.local dumps and no
    colour codes (the output is not a terminal); the whole output is in one log file per step."""
    assert "\x1b[" not in progress and "KFP Executor" not in progress and "executor_input" not in progress
    assert len(progress.splitlines()) < 60
    assert re.search(r"^\d\d:\d\d:\d\d  prepare +started$", progress, re.MULTILINE)
    assert re.search(r"  sft +done +[\dm.]+s  loss [\d.]+, eval_loss", progress)
    assert re.search(r"  register-2 +done .* version 1$", progress, re.MULTILINE)
    assert f"step logs: {run_dir / 'logs'}" in progress
    sft_log = (run_dir / "logs" / "sft.log").read_text()
    assert "Executing task 'sft'" in sft_log and "KFP Executor" in sft_log and "sft step 4" in sft_log
    assert "Executing task 'hipo-rl'" not in sft_log and "\x1b[" not in sft_log
    names = {p.stem for p in (run_dir / "logs").glob("*.log")}
    assert {"prepare", "sft", "sft-2", "hipo-rl", "evaluate", "evaluate-2", "register-2", "gate-2"} <= names


def assert_run_summary(run_dir):
    """Every step with its status, duration, key metrics and artifacts; the MLflow run and version."""
    summary = (run_dir / "run-summary" / "summary").read_text()
    assert summary.startswith("# HiPO pipeline run: SUCCEEDED")
    assert f"- MLflow run: `{run_dir.name}`" in summary
    assert "- model: hipo-policy v1 (registered by MLflow run " in summary
    rows = {row.split("|")[1].strip(): row for row in summary.splitlines() if row.startswith("| ")}
    steps = {"prepare", "generate-hybrid-data", "validate-data", "sft", "hipo-rl", "evaluate", "sft-2",
             "evaluate-2", "register-2", "gate-2", "promote-2"}  # fmt: skip
    assert steps <= set(rows)
    assert all(re.match(rf"\| {step} \| succeeded \| [\dm.]+s \| \S", rows[step]) for step in steps)
    assert "think_on_share" in rows["generate-hybrid-data"] and "version 1" in rows["register-2"]
    assert f"report `{run_dir / 'validate-data' / 'report.html'}`" in summary
    assert f"model `{run_dir / 'hipo-rl' / 'model'}`" in summary


def test_five_arms_write_the_table_to_the_report_metrics_and_registry_run(
    tmp_path, mlflow_server, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # wins over the local registry
    name = f"hipo-five-arms-{uuid.uuid4().hex[:8]}"  # the server lives for the whole session
    config = build_config({}, [*SMALL, f"registry.model_name={name}", f"registry.experiment={name}"])
    run = run_local(config, tmp_path / "run", arms="all")
    assert not [p for p in tmp_path.rglob("*") if p.name in ("mlflow.db", "mlruns")]
    rows = [
        line.split("|")[1].strip() for line in run.comparison_summary.splitlines() if line.startswith("| C")
    ]
    assert rows[:5] == list(ARM_NAMES.values())  # the paper's five rows, in its order
    assert run.comparison is not None and "Cold-Start (on)+GRPO" in run.comparison.read_text()
    kfp_metrics = json.loads((run.run_dir / "compare-arms" / "executor_output.json").read_text())
    assert "comparison/Cold-Start-on-GRPO/tokens_rel" in json.dumps(kfp_metrics)
    client = MlflowClient(mlflow_server, mlflow_server)
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
    assert_training_curves_nest_under_the_pipeline_run(client, run, version.run_id)


def assert_training_curves_nest_under_the_pipeline_run(client, run, registration_run_id):
    """One MLflow run per pipeline run, named like its artifacts folder; each training step's curve
    (every logged step) and the registration in runs nested under it."""
    parent = client.get_run(run.mlflow_run_id)
    assert parent.info.run_name == run.run_dir.name and parent.info.status == "FINISHED"
    assert parent.data.tags["artifacts"] == str(run.run_dir)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run.mlflow_run_id}'"
    )
    by_name = {child.info.run_name: child for child in children}
    names = sorted(child.info.run_name for child in children)  # GRPO from each cold start, told apart
    assert names == [
        "register",
        "rl (grpo from mix)",
        "rl (grpo from on)",
        "rl (hipo from mix)",
        "sft (mix)",
        "sft (on)",
    ]
    assert by_name["register"].info.run_id == registration_run_id
    sft_loss = client.get_metric_history(by_name["sft (mix)"].info.run_id, "loss")
    assert [m.step for m in sft_loss] == [4]  # sft.steps=4, logged at the last step
    eval_loss = client.get_metric_history(by_name["sft (on)"].info.run_id, "eval_loss")
    assert [m.step for m in eval_loss] == [0, 4]
    rewards = client.get_metric_history(by_name["rl (hipo from mix)"].info.run_id, "reward_mean")
    assert [m.step for m in rewards] == [1, 2]
    assert all(child.info.status == "FINISHED" for child in children)
    assert "run-summary.md" in {a.path for a in client.list_artifacts(run.mlflow_run_id)}


def scored_records(step_dir):
    """{model folder: its eval_run.json} of an evaluation step."""
    files = (step_dir / "results" / "models").glob("*/eval_run.json")
    return {path.parent.name: json.loads(path.read_text()) for path in files}


def test_a_stopped_run_ends_its_mlflow_run_and_the_nested_runs_still_running(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from hipo.config import MLFLOW_PARENT_RUN_VARIABLE
    from hipo.pipeline.run import _PipelineMlflowRun, local_config
    from hipo.train.metrics import MlflowCurve

    config = local_config(build_config({}, SMALL))
    pipeline_run = _PipelineMlflowRun(config)
    monkeypatch.setenv(MLFLOW_PARENT_RUN_VARIABLE, pipeline_run.run_id)
    curve = MlflowCurve(config, "sft (mix)", {"sft.steps": 4})
    curve.log(1, {"loss": 2.0})  # then the step is interrupted: its run is never closed
    pipeline_run.finish(None, succeeded=False)
    client = MlflowClient(config.registry.tracking_uri)
    assert client.get_run(curve.run_id).info.status == "FAILED"
    assert client.get_run(pipeline_run.run_id).info.status == "FAILED"
    assert config.registry.tracking_uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"


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
    assert f"\n  its report: {run_dir / 'validate-data' / 'report.html'}\n" in message
    assert message.endswith(f"\n  its log: {run_dir / 'logs' / 'validate-data.log'}")
    assert "GateFailed" in (run_dir / "logs" / "validate-data.log").read_text()
    summary = (run_dir / "run-summary" / "summary").read_text()
    assert "FAILED" in summary and "| validate-data | failed |" in summary
    assert "| prepare | succeeded |" in summary
