"""`hipo run --arms all` with ``launch.backend=trainjob``: the whole DAG through kfp.local, each training
step a TrainJob on the fake Kubernetes API (tests/fakes/k8s_api.py) whose "pod" is a real
``python -m hipo.launch.entry`` process training through the S3 server. Then a retry of one step
reattaches to that step's job, and the same job name asked for with other inputs is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fakes.k8s_api import FakeKubeAPI, failed, running, succeeded

from hipo.cli import main as hipo_main
from hipo.launch import LaunchError, run_training
from hipo.launch.kube import TRAINJOB, api_client
from hipo.launch.manifests import DIGEST_LABEL, RUN_LABEL
from hipo.pipeline.steps import read_config

NS = "team-a"
SMALL = [
    "task.train_size=200",
    "task.eval_size=20",
    "eval.max_problems=10",
    "sft.steps=4",
    "sft.eval_every=4",
    "rl.steps=2",
    "rl.prompts_per_step=4",
    "rl.group_size=4",
    "registry.max_format_failure_rate=1.0",
]


TRAINJOB_REF = (TRAINJOB.group, TRAINJOB.version)
COMPLETE = {"conditions": [{"type": "Complete", "status": "True", "reason": "JobSetCompleted"}]}


def kubernetes_client():
    from kubernetes import client

    return client.CustomObjectsApi(api_client())


def entry_args(body: dict) -> list[str]:
    args = body["spec"]["trainer"]["args"]
    assert args[:2] == ["-m", "hipo.launch.entry"], args
    return args[2:]


def the_pod_trains(api: FakeKubeAPI, key) -> None:
    """The node pod: the trainer's command in a process of its own; the job ends as the process does."""
    body = api.job(key[2], key[3], key[1])
    done = subprocess.run(
        [sys.executable, "-m", "hipo.launch.entry", *entry_args(body)], capture_output=True, text=True
    )
    if done.returncode == 0:
        succeeded()(api, key)
    else:
        failed("Error", f"the pod exited with {done.returncode}", done.stdout + done.stderr)(api, key)


@pytest.mark.slow
def test_five_arms_train_five_distinct_jobs_on_distinct_inputs(s3_prefix, tmp_path, monkeypatch, capsys):
    kube = FakeKubeAPI().start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kubeconfig", NS)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        kube.default_script = [running(), the_pod_trains]
        launch = ["launch.backend=trainjob", f"launch.work_uri={s3_prefix}", f"launch.namespace={NS}"]
        args = ["run", "--arms", "all", "--out", str(tmp_path / "run")]
        for override in [*SMALL, *launch]:
            args += ["--set", override]
        assert hipo_main(args) == 0, capsys.readouterr().err
    finally:
        kube.stop()

    bodies = kube.created
    names = [b["metadata"]["name"] for b in bodies]
    assert len(bodies) == 5 and len(set(names)) == 5, names
    arms = ("sft-mix-", "sft-on-", "rl-mix-hipo-", "rl-on-grpo-", "rl-mix-grpo-")
    assert sorted(next(a for a in arms if n.startswith(f"hipo-{a}")) for n in names) == sorted(arms)
    inputs = [a[a.index("--data" if "--data" in a else "--policy") + 1] for a in map(entry_args, bodies)]
    assert len(set(inputs)) == 5, inputs
    run_names = {a[a.index("--run-name") + 1] for a in map(entry_args, bodies) if "--policy" in a}
    assert run_names == {"rl (hipo from mix)", "rl (grpo from on)", "rl (grpo from mix)"}  # MLflow runs
    digests = {b["metadata"]["labels"][DIGEST_LABEL] for b in bodies}
    assert len(digests) == 5 and len({b["metadata"]["labels"][RUN_LABEL] for b in bodies}) == 1
    assert all(b["metadata"]["namespace"] == NS for b in bodies)
    outputs = {a[a.index("--out-uri") + 1] for a in map(entry_args, bodies)}
    assert len(outputs) == 5
    run_dir = next((tmp_path / "run" / "artifacts").iterdir())
    assert json.loads((run_dir / "compare-arms" / "executor_output.json").read_text())

    # a retry of the sft-on step (same run, same inputs) reattaches to its job; the same task name
    # with the other arm's data is refused, never attached
    kube = FakeKubeAPI().start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kubeconfig", NS)))
        [sft_on] = [b for b in bodies if b["metadata"]["name"].startswith("hipo-sft-on-")]
        client = kubernetes_client()
        client.create_namespaced_custom_object(*TRAINJOB_REF, NS, "trainjobs", {**sft_on, "status": {}})
        kube.set_job_status(("trainer.kubeflow.org", NS, "trainjobs", sft_on["metadata"]["name"]), COMPLETE)
        config = read_config(run_dir / "prepare" / "config")
        run_id = sft_on["metadata"]["labels"][RUN_LABEL]
        data = run_dir / "generate-hybrid-data" / "dataset"
        again = run_training("sft", str(data / "on"), config, tmp_path / "retry", run_id, task="on")
        assert (again / "config.json").is_file() and len(kube.created) == 1  # no second job
        with pytest.raises(LaunchError, match="made for another task or other inputs"):
            run_training("sft", str(data / "mix"), config, tmp_path / "wrong", run_id, task="on")
    finally:
        kube.stop()
