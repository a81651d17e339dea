"""hipo.registry against a real `mlflow server` (SQLite backend, artifacts in SeaweedFS; see conftest.py)."""

import json
import socket
import time
import uuid

import pytest
from conftest import TINY_FIXED_RESPONSES

from hipo import storage, template
from hipo.cli import main
from hipo.config import build_config
from hipo.registry import RegistryError, attach_to_version, describe, promote, register, rollback
from hipo.registry.champion import (
    GATE_BASELINES,
    GATE_COMPARED_TO,
    GATE_DECISION,
    GATE_REASONS,
    HISTORY,
    PREVIOUS,
)


def metrics(acc, tokens=50.0, think=0.3, fmt=0.01):
    return {
        "accuracy": acc,
        "arithmetic/accuracy": acc,
        "arithmetic/tokens": tokens,
        "arithmetic/think_rate": think,
        "arithmetic/format_fail_rate": fmt,
        "arithmetic/d1/accuracy": 1.0,
    }


@pytest.fixture
def config(mlflow_server, monkeypatch):
    """A fresh model name (the server lives for the session); MLFLOW_TRACKING_URI points at the server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    name = f"hipo-test-{uuid.uuid4().hex[:8]}"
    return build_config({"registry": {"model_name": name, "experiment": name}})


def _client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server, mlflow_server)


def test_gate_promotion_rollback_and_idempotency(config, tiny_model_dir, mlflow_server, tmp_path, s3_prefix):
    name, client = config.registry.model_name, _client(mlflow_server)
    storage.upload_dir(tiny_model_dir, f"{s3_prefix}/checkpoint")  # the third version comes from S3
    (tmp_path / "report.md").write_text("# report\n")
    lineage = {"git_commit": "abc123", "data_uri": "s3://bucket/data/mix", "data_hash": "f" * 64}

    first = register(
        config,
        metrics(0.80),
        tiny_model_dir,
        pipeline_run_id="run-1",
        reports=[tmp_path / "report.md"],
        **lineage,
    )
    assert (first.version, first.created, first.gate.decision) == ("1", True, "promoted")
    assert first.gate.reasons[-1] == "first champion: no champion or baseline to compare with"

    second = register(config, metrics(0.85, tokens=40.0), tiny_model_dir, pipeline_run_id="run-2")
    assert (second.version, second.gate.decision, second.gate.compared_to) == ("2", "promoted", "1")

    third = register(config, metrics(0.70, tokens=60.0), f"{s3_prefix}/checkpoint", pipeline_run_id="run-3")
    assert (third.version, third.gate.passed) == ("3", False)
    v3 = client.get_model_version(name, "3").tags
    assert v3[GATE_DECISION] == "rejected" and v3[GATE_COMPARED_TO] == "2"
    assert "arithmetic/accuracy 0.7000 vs champion 0.8500" in v3[GATE_REASONS]
    assert "arithmetic/tokens 60.0 vs champion 40.0: above the ceiling 42.0" in v3[GATE_REASONS]
    model = client.get_registered_model(name)
    assert model.aliases == {"champion": "2", "challenger": "3"}
    assert client.get_model_version(name, "2").tags[PREVIOUS] == "1"

    again = register(config, metrics(0.99), tiny_model_dir, pipeline_run_id="run-2")  # a retried step
    assert (again.version, again.created, again.gate.decision) == ("2", False, "promoted")
    assert len(client.search_model_versions(f"name = '{name}'")) == 3
    assert client.get_registered_model(name).aliases["challenger"] == "3"

    run = client.get_run(first.run_id)  # lineage, params, metrics, reports on the first run
    assert run.data.tags["data_hash"] == "f" * 64 and run.data.tags["pipeline_run_id"] == "run-1"
    assert run.data.params["rl.omega"] == "0.05" and run.data.metrics["arithmetic/d1/accuracy"] == 1.0
    assert {a.path for a in client.list_artifacts(first.run_id, "report")} == {"report/report.md"}
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "mix" and dataset.dataset.digest == "f" * 36
    v1 = client.get_model_version(name, "1")
    assert v1.run_id == first.run_id and v1.tags["git_commit"] == "abc123"
    assert v1.tags["metric.arithmetic/accuracy"] == "0.8"

    assert rollback(name, "v2 misbehaves") == "1"
    assert client.get_registered_model(name).aliases["champion"] == "1"
    assert "to v1: v2 misbehaves" in client.get_model_version(name, "2").tags["champion.rolled_back"]
    with pytest.raises(RegistryError, match=r"champion v1 of .* has no previous champion"):
        rollback(name)
    assert promote(name, 3, "hotfix approved by hand") == "1"
    v3 = client.get_model_version(name, "3").tags
    assert v3[PREVIOUS] == "1" and v3["champion.reason"] == "hotfix approved by hand"
    assert v3[GATE_DECISION] == "rejected"  # the gate's verdict stays on record
    assert client.get_registered_model(name).tags[HISTORY] == "1,2,1,3"
    summary = describe(name)
    assert [v.version for v in summary.versions] == ["3", "2", "1"]
    assert summary.aliases == {"champion": "3", "challenger": "3"}
    assert summary.versions[1].metrics["arithmetic/tokens"] == 40.0


@pytest.fixture(scope="module")
def published(mlflow_server, fixed_response_model_dir):
    """A fresh model with v1 (first champion) and v2 (worse: rejected, the challenger), both the model that
    answers TINY_FIXED_RESPONSES; the tracking URI is passed explicitly (no environment)."""
    config = build_config({"registry": {"model_name": f"hipo-pub-{uuid.uuid4().hex[:8]}"}})
    for run, accuracy in (("pub-1", 0.8), ("pub-2", 0.5)):
        register(
            config,
            metrics(accuracy),
            fixed_response_model_dir,
            pipeline_run_id=run,
            tracking_uri=mlflow_server,
        )
    return config.registry.model_name


def test_champion_loads_from_the_registry_and_generates(published, mlflow_server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    request = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 40}
    answer = mlflow.pyfunc.load_model(f"models:/{published}@champion").predict(request)
    content = answer[0]["choices"][0]["message"]["content"]
    assert content == TINY_FIXED_RESPONSES["What is 2 + 3?"]
    assert template.parse(content).answer == "5"
    pipeline = mlflow.transformers.load_model(f"models:/{published}@champion")
    out = pipeline([{"role": "user", "content": "Say hello."}], max_new_tokens=20, do_sample=False)
    assert out[0]["generated_text"][-1]["content"] == TINY_FIXED_RESPONSES["Say hello."]


def test_cli_models_promote_rollback(published, mlflow_server, capsys):
    name, uri = published, ["--tracking-uri", mlflow_server]
    assert main(["models", name, *uri]) == 0
    out = capsys.readouterr().out
    assert f"{name}: challenger v2, champion v1; champion history: v1" in out
    assert "version  aliases     gate      arithmetic/accuracy" in out
    assert "2        challenger  rejected  0.5" in out and "pub-2" in out
    assert main(["promote", name, "v2", "--reason", "manual check", *uri]) == 0  # as `models` prints it
    assert capsys.readouterr().out.strip() == f"{name}: champion is v2 (was v1)"
    assert main(["rollback", name, *uri]) == 0
    assert capsys.readouterr().out.strip() == f"{name}: champion rolled back to v1"
    assert main(["promote", name, "7", *uri]) == 2
    assert f"model '{name}' has no version 7; versions: 1, 2" in capsys.readouterr().err
    assert main(["models", "no-such-model", *uri]) == 2
    assert "no registered model 'no-such-model'" in capsys.readouterr().err


def test_cli_uses_mlflow_tracking_uri_over_the_local_registry(
    config, mlflow_server, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the config fixture set MLFLOW_TRACKING_URI to the server
    assert main(["models", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert f"registry: {mlflow_server}\n" in err and "no registered model 'no-such-model'" in err
    assert list(tmp_path.iterdir()) == []  # no runs/mlflow.db, no mlruns: nothing in the working directory


def test_missing_model_and_champion_errors(config, mlflow_server):
    with pytest.raises(RegistryError, match=r"no registered model 'absent-model' .*registered: "):
        describe("absent-model")
    with pytest.raises(RegistryError, match="no registered model"):
        rollback("absent-model")
    _client(mlflow_server).create_registered_model(config.registry.model_name)
    with pytest.raises(RegistryError, match="has no champion to roll back"):
        rollback(config.registry.model_name)
    with pytest.raises(RegistryError, match="has no version 1; versions: none"):
        promote(config.registry.model_name, 1)


def test_unreachable_server_fails_fast(monkeypatch, tiny_model_dir, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    message = f"MLflow tracking server at {uri} is not reachable .*: start it or set MLFLOW_TRACKING_URI"
    with pytest.raises(RegistryError, match=message):
        register(build_config(), metrics(0.5), tiny_model_dir, pipeline_run_id="x")
    assert main(["models", "hipo-policy"]) == 2
    assert "start it or set MLFLOW_TRACKING_URI" in capsys.readouterr().err
    assert time.monotonic() - start < 15


def test_the_pipeline_gates_then_promotes_in_separate_steps(config, tiny_model_dir, mlflow_server):
    """register(promote=False) records "passed" without moving the champion; gate_version reads the
    recorded decision; promote_challenger finishes the promotion and refuses a rejected version."""
    from hipo.registry import CHAMPION, gate_version, promote_challenger

    name, client = config.registry.model_name, _client(mlflow_server)
    first = register(config, metrics(0.80), tiny_model_dir, pipeline_run_id="p-1", promote=False)
    assert first.gate.passed and client.get_model_version(name, "1").tags[GATE_DECISION] == "passed"
    assert CHAMPION not in client.get_registered_model(name).aliases
    assert gate_version(name, "1", config.registry).passed
    assert promote_challenger(name, "1") is None
    assert client.get_registered_model(name).aliases[CHAMPION] == "1"
    assert client.get_model_version(name, "1").tags[GATE_DECISION] == "promoted"
    assert promote_challenger(name, "1") == "1"  # idempotent: already the champion

    worse = register(config, metrics(0.50), tiny_model_dir, pipeline_run_id="p-2", promote=False)
    decision = gate_version(name, worse.version, config.registry)
    assert not decision.passed and decision.compared_to == "1"
    with pytest.raises(RegistryError, match="gate decision is rejected"):
        promote_challenger(name, worse.version)
    assert client.get_registered_model(name).aliases[CHAMPION] == "1"


def test_a_first_champion_worse_than_its_cold_starts_is_rejected(config, tiny_model_dir, mlflow_server):
    """No champion yet: the challenger is held against the run's own cold starts; the reasons are
    recorded on the version, no champion is set, and promote_challenger refuses it."""
    from hipo.registry import CHAMPION, gate_version, promote_challenger

    name, client = config.registry.model_name, _client(mlflow_server)
    baselines = {"Cold-Start (mix)": metrics(0.92), "Cold-Start (on)": metrics(1.0, tokens=45.0, think=1.0)}
    worse = register(
        config, metrics(0.90), tiny_model_dir, pipeline_run_id="b-1", promote=False, baselines=baselines
    )
    assert not worse.gate.passed and worse.gate.compared_to is None
    tags = client.get_model_version(name, worse.version).tags
    assert tags[GATE_DECISION] == "rejected" and tags[GATE_COMPARED_TO] == "none"
    assert tags[GATE_REASONS] == (
        "arithmetic/accuracy 0.9000 vs Cold-Start (on) 1.0000: drop +0.1000 exceeds the allowed 0.0200"
    )  # 0.02 below its own cold start is within the default tolerance
    assert json.loads(tags[GATE_BASELINES])["Cold-Start (on)"]["arithmetic/tokens"] == 45.0
    assert not gate_version(name, worse.version, config.registry).passed  # the recorded decision
    with pytest.raises(RegistryError, match="gate decision is rejected"):
        promote_challenger(name, worse.version)
    assert CHAMPION not in client.get_registered_model(name).aliases

    lenient = config.model_copy(
        update={"registry": config.registry.model_copy(update={"max_accuracy_drop_vs_baseline": 0.1})}
    )
    kept = register(
        lenient, metrics(0.90), tiny_model_dir, pipeline_run_id="b-2", promote=False, baselines=baselines
    )
    assert kept.gate.passed and len(kept.gate.reasons) == 3  # format failures and both cold starts
    assert promote_challenger(name, kept.version) is None
    assert client.get_registered_model(name).aliases[CHAMPION] == kept.version


def test_results_attach_to_the_run_of_a_registered_version(config, tiny_model_dir, mlflow_server, tmp_path):
    name, client = config.registry.model_name, _client(mlflow_server)
    version = register(config, metrics(0.8), tiny_model_dir, pipeline_run_id="attach-1", promote=False)
    (tmp_path / "summary.md").write_text("| arm | accuracy |\n")
    table = {"comparison/Cold-Start-mix-HiPO/tokens_rel": -0.31, "comparison/Cold-Start-on/accuracy": 0.99}
    run_id = attach_to_version(
        name, version.version, table, [tmp_path / "summary.md"], artifact_path="comparison"
    )
    assert run_id == version.run_id
    logged = client.get_run(run_id).data.metrics
    assert logged["comparison/Cold-Start-mix-HiPO/tokens_rel"] == -0.31 and logged["accuracy"] == 0.8
    assert [a.path for a in client.list_artifacts(run_id, "comparison")] == ["comparison/summary.md"]
    with pytest.raises(RegistryError, match="has no version 9"):
        attach_to_version(name, 9, table, [], artifact_path="comparison")
