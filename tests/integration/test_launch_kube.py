"""The cluster launcher against a loopback fake of the Kubernetes API (tests/fakes/k8s_api.py): success
with the checkpoint collected through S3, failures explained, watches resumed, deadline, cancel,
re-attach, and the RBAC rules it needs — exactly those in hipo/launch/permissions.py."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from fakes.k8s_api import FakeKubeAPI, failed, image_pull_fails, running, succeeded

from hipo import storage
from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.engines.scripted import ScriptedEngine
from hipo.launch import LaunchError, run_training
from hipo.launch.entry import main as pod_entry
from hipo.launch.kube import (
    JOB_KINDS,
    PYTORCHJOB,
    TRAINJOB,
    JobRunner,
    StepCancelled,
    api_client,
    cancel_on_sigterm,
)
from hipo.launch.manifests import DIGEST_LABEL, JobSpec, job_name, pytorchjob, trainjob
from hipo.launch.permissions import LAUNCHER_RULES
from hipo.launch.run_state import POD_NAME_ENV, WORKFLOW_LABEL, Stop, why_stopped
from hipo.launch.validate import validate_pytorchjob, validate_trainer_object
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter

NS = "team-a"
TINY_SFT = {
    "model": {"tiny_hidden": 32, "tiny_layers": 1, "tiny_heads": 2},
    "sft": {"steps": 2, "batch_size": 8, "eval_every": 2, "optim": {"micro_batch_size": 8}},
}


@pytest.fixture
def kube(tmp_path, monkeypatch):
    api = FakeKubeAPI().start()
    monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("launch-data")
    config = build_config({"task": {"train_size": 40, "eval_size": 16}})
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), out)
    return out / "mix"


def body_for(kind: str, name: str, **spec) -> dict:
    job = JobSpec(name=name, namespace=NS, stage="sft", run_id=name, args=("sft",), image="train", **spec)
    return trainjob(job) if kind == "trainjob" else pytorchjob(job)


def runner(kind: str, deadline_s: float = 120, lines: list | None = None) -> JobRunner:
    say = lines.append if lines is not None else print
    return JobRunner(api_client(), JOB_KINDS[kind], NS, deadline_s, say=say)


def arg(body: dict, flag: str) -> str:
    args = (
        body["spec"]["trainer"]["args"]
        if body["kind"] == "TrainJob"
        else (body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["args"])
    )
    return args[args.index(flag) + 1]


def test_trainjob_runs_the_pod_entry_and_the_checkpoint_comes_back(
    kube, s3_prefix, sft_data, tmp_path, capsys
):
    config = build_config(
        {
            **TINY_SFT,
            "launch": {"backend": "trainjob", "namespace": NS, "work_uri": s3_prefix, "deadline_s": 300},
        }
    )

    def pods_train(api, key):  # what the node pod runs: torchrun -m hipo.launch.entry <args> (one rank)
        try:
            code = pod_entry(api.created[-1]["spec"]["trainer"]["args"][2:])
        except Exception as error:  # the job fails with it instead of the test hanging
            code = repr(error)
        (succeeded() if code == 0 else failed("Error", f"the pod entry exited with {code}", ""))(api, key)

    kube.script(job_name("sft", "run-1", "mix"), [running(pods=2), pods_train])
    final = run_training("sft", str(sft_data), config, tmp_path / "model", "run-1", task="mix")

    assert final == tmp_path / "model" and (final / "config.json").is_file()
    assert list(final.glob("*.safetensors")) and (final / "tokenizer_config.json").is_file()
    [body] = kube.created
    validate_trainer_object(body)
    assert arg(body, "--data").startswith(f"{s3_prefix}/inputs/") and str(sft_data) not in json.dumps(body)
    assert storage.read_bytes(arg(body, "--config-uri")).decode() == config.to_yaml()
    assert arg(body, "--out-uri") == f"{s3_prefix}/{body['metadata']['name']}"
    err = capsys.readouterr().err
    for line in ("created", "TrainJob hipo-sft-mix-run-1-", ": Running", "pods 2 Running", ": Succeeded"):
        assert line in err, err


def test_pytorchjob_rl_collects_final_and_metrics(kube, s3_prefix, tmp_path, tiny_model_dir):
    config = build_config(
        {"launch": {"backend": "pytorchjob", "namespace": NS, "work_uri": s3_prefix, "nodes": 2}}
    )

    def pods_train(api, key):  # rank 0 of the RL job leaves final/ and metrics.jsonl under --out-uri
        out = arg(api.created[-1], "--out-uri")
        storage.upload_dir(tiny_model_dir, f"{out}/final")
        storage.write_bytes(f"{out}/metrics.jsonl", b'{"step": 1}\n')

    kube.script(job_name("rl", "run-2", "mix-hipo"), [running(pods=2), succeeded(before=pods_train)])
    name = "rl (hipo from mix)"
    final = run_training(
        "rl", "s3://models/sft", config, tmp_path / "rl", "run-2", task="mix-hipo", run_name=name
    )
    assert final == tmp_path / "rl" / "final" and (final / "config.json").is_file()
    assert (tmp_path / "rl" / "metrics.jsonl").read_text() == '{"step": 1}\n'
    [body] = kube.created
    validate_pytorchjob(body)
    assert arg(body, "--policy") == "s3://models/sft" and len(body["spec"]["pytorchReplicaSpecs"]) == 2
    assert arg(body, "--run-name") == name  # the pod's MLflow run, named as a local one


def leaves_a_model_naming_its_data(api, key):
    """What the SFT pods leave under --out-uri: a model whose config.json names the data it read."""
    body = api.job(key[2], key[3], key[1])
    storage.write_bytes(
        f"{arg(body, '--out-uri')}/config.json", json.dumps({"data": arg(body, "--data")}).encode()
    )


def test_the_arms_of_one_run_get_their_own_jobs_inputs_and_models(kube, s3_prefix, sft_data, tmp_path):
    """Defect: sft-mix and sft-on shared one job name, so the second overwrote the first's inputs, got
    a 409 and downloaded the first's model. Each arm now has its own job, inputs and model, and a
    retry of one arm reattaches to that arm's job."""
    config = build_config({"launch": {"backend": "trainjob", "namespace": NS, "work_uri": s3_prefix}})
    kube.default_script = [succeeded(before=leaves_a_model_naming_its_data)]
    models = {}
    for arm in ("mix", "on"):
        data = sft_data.parent / arm
        models[arm] = run_training("sft", str(data), config, tmp_path / arm, "run-7", task=arm)
    names = [body["metadata"]["name"] for body in kube.created]
    assert len(set(names)) == 2 and all(arm in name for arm, name in zip(("mix", "on"), names, strict=True))
    uris = [arg(body, "--data") for body in kube.created]
    assert len(set(uris)) == 2
    for arm, uri in zip(("mix", "on"), uris, strict=True):
        assert json.loads((models[arm] / "config.json").read_text())["data"] == uri
        uploaded = storage.read_bytes(f"{uri}/train.parquet")
        assert uploaded == (sft_data.parent / arm / "train.parquet").read_bytes()

    retried = run_training("sft", str(sft_data.parent / "on"), config, tmp_path / "retry", "run-7", task="on")
    assert len(kube.created) == 2, "the retry created a job instead of reattaching"
    assert json.loads((retried / "config.json").read_text())["data"] == uris[1]


def test_a_job_made_for_another_task_is_never_reused(kube, s3_prefix, sft_data, tmp_path):
    from kubernetes import client

    config = build_config({"launch": {"backend": "trainjob", "namespace": NS, "work_uri": s3_prefix}})
    name = job_name("sft", "run-8", "mix")
    kube.script(name, [running()])
    squatter = body_for("trainjob", name)
    squatter["metadata"]["labels"][DIGEST_LABEL] = "0123456789abcdef"
    client.CustomObjectsApi(api_client()).create_namespaced_custom_object(
        TRAINJOB.group, TRAINJOB.version, NS, TRAINJOB.plural, squatter
    )
    with pytest.raises(LaunchError, match=rf"{name} already exists but was made for another task"):
        run_training("sft", str(sft_data), config, tmp_path / "m", "run-8", task="mix")
    assert kube.job("trainjobs", name, NS) is not None and kube.deletes == []
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_failure_carries_the_reason_the_log_tail_and_events(kube, kind):
    log = "".join(f"step {i} loss 1.0\n" for i in range(80)) + "RuntimeError: CUDA out of memory\n"
    kube.script(
        "job-f", [running(), failed("BackoffLimitExceeded", "Job has reached the backoff limit", log)]
    )
    with pytest.raises(LaunchError) as caught:
        runner(kind).run(body_for(kind, "job-f"))
    message = str(caught.value)
    assert (
        f"{JOB_KINDS[kind].kind} {NS}/job-f failed: BackoffLimitExceeded: Job has reached the backoff limit"
        in message
    )
    assert "RuntimeError: CUDA out of memory" in message and "step 79 loss" in message
    assert "step 30 loss" not in message  # only the last 50 lines
    assert "BackOff Pod/job-f-" in message and "JobFailed" in message


def test_dropped_watches_resume_and_410_relists(kube):
    kube.script("job-w", [running(), running(pods=2), succeeded()])
    kube.drop_next_watch(after_events=1)
    kube.drop_next_watch(after_events=1, compact=True)
    lines: list[str] = []
    final = runner("trainjob", lines=lines).run(body_for("trainjob", "job-w"))
    assert final["status"]["conditions"][0]["type"] == "Complete"
    assert sum("watch connection lost" in line for line in lines) == 2, lines
    assert any("410 Gone" in line for line in lines), lines
    verbs = [c.verb for c in kube.calls if c.resource == "trainjobs"]
    assert verbs.count("watch") == 3 and verbs.count("list") == 1


def test_deadline_deletes_the_job(kube):
    kube.script("job-d", [running()])
    with pytest.raises(LaunchError, match=r"job-d did not finish within 1 s .*launch.deadline_s.*deleted"):
        runner("pytorchjob", deadline_s=1).run(body_for("pytorchjob", "job-d"))
    assert kube.job("pytorchjobs", "job-d", NS) is None
    assert kube.deletes == [("job-d", {"propagationPolicy": "Foreground"})]


def sigterm_the_step(kube, tmp_path, name: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the launcher on ``name`` in a process of its own, SIGTERM it once it watches; (code, stderr)."""
    script = textwrap.dedent(
        """
        import json, sys
        from hipo.launch.kube import TRAINJOB, JobRunner, api_client, cancel_on_sigterm
        with cancel_on_sigterm():
            JobRunner(api_client(), TRAINJOB, sys.argv[2], 600).run(json.loads(sys.argv[1]))
        """
    )
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), **env}
    step = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(body_for("trainjob", name)), NS],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def watching():
            job = kube.job("trainjobs", name, NS)
            return any(c.verb == "watch" for c in kube.calls) and bool(job and job.get("status"))

        assert kube.wait_for(watching, timeout=60), "the launcher never started watching"
        step.send_signal(signal.SIGTERM)
        _, err = step.communicate(timeout=60)
    finally:
        step.kill()
    return step.returncode, err


def test_sigterm_outside_a_kfp_pod_deletes_the_job_and_stops_the_step(kube, tmp_path):
    kube.script("job-c", [running()])
    code, err = sigterm_the_step(kube, tmp_path, "job-c", {})
    assert code != 0 and "step cancelled (not in a KFP step pod" in err and "StepCancelled" in err
    assert kube.job("trainjobs", "job-c", NS) is None and kube.deletes[0][0] == "job-c"


def a_step_pod_of(kube, workflow: dict) -> dict[str, str]:
    """The step's pod and its run's Argo workflow in the fake; the env KFP gives the step."""
    kube.create("argoproj.io", "v1alpha1", NS, "workflows", workflow)
    kube.add_step_pod(NS, "step-pod-1", {WORKFLOW_LABEL: workflow["metadata"]["name"]})
    return {POD_NAME_ENV: "step-pod-1"}


def workflow(name: str, **spec) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_an_evicted_step_keeps_its_training_job_for_the_retry(kube, tmp_path):
    """Defect: any SIGTERM deleted the job, so a node drain killed a days-long training run."""
    kube.script("job-e", [running()])
    env = a_step_pod_of(kube, workflow("run-abc", entrypoint="main"))
    code, err = sigterm_the_step(kube, tmp_path, "job-e", env)
    assert code != 0 and "workflow run-abc is still running" in err and "the job keeps running" in err
    assert kube.job("trainjobs", "job-e", NS) is not None and kube.deletes == []
    lines: list[str] = []
    kube.set_job_status((TRAINJOB.group, NS, TRAINJOB.plural, "job-e"), succeeded_status())
    runner("trainjob", lines=lines).run(body_for("trainjob", "job-e"))  # the retried step
    assert any("attaching" in line for line in lines) and len(kube.created) == 2  # workflow + job


def succeeded_status() -> dict:
    return {"conditions": [{"type": "Complete", "status": "True", "reason": "JobSetCompleted"}]}


def test_a_run_terminated_by_its_user_deletes_the_training_job(kube, tmp_path):
    kube.script("job-t", [running()])
    env = a_step_pod_of(kube, workflow("run-def", entrypoint="main", activeDeadlineSeconds=0))
    code, err = sigterm_the_step(kube, tmp_path, "job-t", env)
    assert code != 0 and "step cancelled (workflow run-def was terminated), deleting the job" in err
    assert kube.job("trainjobs", "job-t", NS) is None


def test_a_sigterm_whose_raise_is_lost_in_a_finalizer_still_cancels(kube):
    """The flaky-cancel bug: a signal that lands while the main thread closes a dropped urllib3
    response in ``IOBase.__del__`` has its StepCancelled discarded by CPython; the wait must still
    notice the cancel (not block in the watch until the deadline) and delete the job."""

    class Finalized(io.RawIOBase):
        def close(self):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # the handler raises; CPython drops it
            super().close()

    def say(line):
        lines.append(line)
        if line.endswith(": Running"):  # in the main thread, between watch events
            Finalized()

    kube.script("job-l", [running()])
    lines: list[str] = []
    with pytest.raises(StepCancelled), cancel_on_sigterm():
        JobRunner(api_client(), TRAINJOB, NS, 20, say=say).run(body_for("trainjob", "job-l"))
    assert any("step cancelled" in line and "deleting the job" in line for line in lines), lines
    assert kube.job("trainjobs", "job-l", NS) is None and kube.deletes[0][0] == "job-l"


def test_a_retried_step_reattaches_to_its_job(kube):
    from kubernetes import client

    kube.script("job-r", [running(), succeeded()])
    api = client.CustomObjectsApi(api_client())
    api.create_namespaced_custom_object(
        TRAINJOB.group, TRAINJOB.version, NS, TRAINJOB.plural, body_for("trainjob", "job-r")
    )
    lines: list[str] = []
    runner("trainjob", lines=lines).run(body_for("trainjob", "job-r"))
    assert any("already exists" in line and "attaching" in line for line in lines), lines
    assert [c.verb for c in kube.calls if c.resource == "trainjobs"][:3] == ["create", "create", "get"]
    assert len(kube.created) == 1 and kube.deletes == []


def test_an_api_server_that_does_not_answer_is_a_clear_error_and_the_retry_attaches(kube):
    kube.stall_next("POST", "trainjobs", seconds=3)  # the create lands after the client gave up
    kube.script("job-s", [running(), succeeded()])
    quick = JobRunner(api_client(), TRAINJOB, NS, 120, say=print, api_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(LaunchError) as raised:
        quick.run(body_for("trainjob", "job-s"))
    assert time.monotonic() - started < 2.5
    message = str(raised.value)
    assert f"the Kubernetes API at {kube.url} did not answer (within 0.5 s per request" in message
    assert "ReadTimeoutError" in message and "retrying the step attaches to it" in message
    assert kube.wait_for(lambda: kube.job("trainjobs", "job-s", NS) is not None)
    lines: list[str] = []
    runner("trainjob", lines=lines).run(body_for("trainjob", "job-s"))
    assert any("already exists" in line and "attaching" in line for line in lines), lines
    assert len(kube.created) == 1


def test_a_retry_after_a_failed_attempt_replaces_the_job(kube):
    kube.script("job-x", [failed("Failed", "rank 0 exited", "boom\n")])
    kube.script("job-x", [running(), succeeded()])
    with pytest.raises(LaunchError, match="rank 0 exited"):
        runner("pytorchjob").run(body_for("pytorchjob", "job-x"))
    lines: list[str] = []
    runner("pytorchjob", lines=lines).run(body_for("pytorchjob", "job-x"))
    assert any("previous attempt failed" in line for line in lines) and len(kube.created) == 2


def test_the_launcher_uses_exactly_the_granted_rbac_rules(kube, monkeypatch):
    """Every path (create, re-attach, replace, watch resume, 410, failure diagnosis, deadline, what a
    SIGTERM looks up) on both kinds: no call outside LAUNCHER_RULES, and no granted verb left unused."""
    for kind in ("trainjob", "pytorchjob"):
        kube.script("rbac-1", [running(), failed("Failed", "bad", "log\n")])
        with pytest.raises(LaunchError):
            runner(kind).run(body_for(kind, "rbac-1"))
        kube.script("rbac-1", [running(), running(pods=2), succeeded()])
        kube.drop_next_watch(after_events=1, compact=True)
        runner(kind).run(body_for(kind, "rbac-1"))
        kube.script("rbac-2", [running()])
        with pytest.raises(LaunchError):
            runner(kind, deadline_s=1).run(body_for(kind, "rbac-2"))
    monkeypatch.setenv(POD_NAME_ENV, "step-pod-1")
    a_step_pod_of(kube, workflow("run-rbac"))
    assert why_stopped(api_client(), NS)[0] is Stop.EVICTED  # what a SIGTERM looks up
    used = {(c.group, c.resource, c.verb) for c in kube.calls}
    granted = {(r.api_group, r.resource, v) for r in LAUNCHER_RULES for v in r.verbs}
    assert used - granted == set(), f"calls the Role does not grant: {sorted(used - granted)}"
    assert granted - used == set(), (
        f"granted but never used (drop them from the Role): {sorted(granted - used)}"
    )
    assert PYTORCHJOB.plural in {c.resource for c in kube.calls}


# ---------------------------------------------------------------- a cluster that is not ready for us


def refusing_cluster(tmp_path, monkeypatch, **fake) -> FakeKubeAPI:
    api = FakeKubeAPI(**fake).start()
    monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return api


@pytest.mark.parametrize(
    ("fake", "expected"),
    [
        (
            {"runtimes": {"torch-distributed"}},
            r"HTTP 422 .*\"hipo-torch\" not found.*install it .*launch\.runtime",
        ),
        ({"served": {"pytorchjobs"}}, r"HTTP 404 .*its CRD is not installed\. Install Kubeflow Trainer v2"),
        (
            {
                "grants": {
                    (r.api_group, r.resource, v) for r in LAUNCHER_RULES for v in r.verbs if v != "create"
                }
            },
            r'HTTP 403 .*cannot create resource "trainjobs".*Role hipo-launcher.*overlays/profile',
        ),
    ],
    ids=["missing-runtime", "no-trainer-crd", "forbidden"],
)
def test_a_cluster_that_refuses_the_job_ends_the_step_at_once_with_the_fix(
    tmp_path, monkeypatch, fake, expected
):
    api = refusing_cluster(tmp_path, monkeypatch, **fake)
    try:
        started = time.monotonic()
        with pytest.raises(LaunchError, match=expected):
            runner("trainjob").run(body_for("trainjob", "job-n"))
        assert time.monotonic() - started < 5
        assert api.job("trainjobs", "job-n", NS) is None
    finally:
        api.stop()


def test_an_image_that_cannot_be_pulled_fails_the_step_within_the_grace(kube):
    kube.script("job-i", [image_pull_fails()])
    quick = JobRunner(api_client(), TRAINJOB, NS, 600, say=print, pull_grace_s=1, pod_check_s=0.2)
    started = time.monotonic()
    with pytest.raises(LaunchError) as raised:
        quick.run(body_for("trainjob", "job-i"))
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert (
        "cannot start (ImagePullBackOff: Back-off pulling image" in message
        and "hipo-train:missing" in message
    )
    assert "make images" in message and "the job was deleted" in message
    assert kube.job("trainjobs", "job-i", NS) is None
