"""TrainJob and PyTorchJob builders: every object passes the published API models, a strict unknown-key
check and the Kubernetes schema; KFP TaskConfig passthroughs land in the job."""

import copy
import json
import re

import pytest
from kfp import dsl

from hipo.config import ConfigError, build_config
from hipo.launch import job_spec
from hipo.launch.manifests import (
    ENTRY_MODULE,
    GPU_RESOURCE,
    GPU_SCHEDULING_ENV,
    JOB_LABEL,
    REPLICATED_JOB,
    RUN_LABEL,
    JobSpec,
    apply_task_config,
    job_name,
    label_value,
    plain_env,
    pod_template,
    pytorchjob,
    secret_env,
    trainjob,
)
from hipo.launch.validate import (
    ManifestError,
    pod_security_problems,
    unknown_keys,
    validate_core_object,
    validate_object,
    validate_pytorchjob,
    validate_trainer_object,
)

ARGS = (
    "sft",
    "--config-uri",
    "s3://b/in/config.yaml",
    "--out-uri",
    "s3://b/w/job",
    "--data",
    "s3://b/d",
)
GPU_SCHEDULING = {
    "resource": GPU_RESOURCE,
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
TASK_CONFIG = dsl.TaskConfig(
    # the launcher pod's own resources (the pipeline applies them to the task): never the job's
    resources={"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}},
    env=[
        {"name": GPU_SCHEDULING_ENV, "value": json.dumps(GPU_SCHEDULING)},
        {"name": "HF_HOME", "value": "/cache"},
        {"name": "JUDGE_API_KEY", "valueFrom": {"secretKeyRef": {"name": "judge", "key": "api-key"}}},
    ],
    volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": "hf-cache"}}],
    volume_mounts=[{"name": "cache", "mountPath": "/cache"}],
    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    tolerations=[{"key": "pool", "operator": "Equal", "value": "train", "effect": "NoSchedule"}],
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["train"]}]}
                ]
            }
        }
    },
)


def base_spec(**overrides):
    values = {
        "name": job_name("sft", "run-7f3a", "mix"),
        "namespace": "team-a",
        "stage": "sft",
        "run_id": "run-7f3a",
        "args": ARGS,
        "image": "ghcr.io/hipo-pipelines/hipo-train:0.1.0",
        "service_account": "hipo-training",
        "deadline_s": 3600,
    }
    return JobSpec(**{**values, **overrides})


SPECS = {
    "cpu-one-node": base_spec(),
    "cpu-procs": base_spec(procs_per_node=2, requests={"cpu": "2"}, shm_size="1Gi"),
    "gpu-multi-node": apply_task_config(
        base_spec(nodes=4, gpus_per_node=4, env=(secret_env("AWS_ACCESS_KEY_ID", "s3", "id"),)), TASK_CONFIG
    ),
    "rl-plain-env": base_spec(stage="rl", env=(plain_env("HIPO_X", "1"),), deadline_s=None),
}


def node_pod(job: dict) -> dict:
    """The node pod a torch runtime would start: trainer fields on container ``node`` plus the patches."""
    trainer = job["spec"]["trainer"]
    [patch] = job["spec"]["runtimePatches"]
    [replicated] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    template = copy.deepcopy(replicated["template"]["spec"]["template"])
    [container] = template["spec"].pop("containers")
    container.update(
        {k: trainer[k] for k in ("image", "command", "args", "env") if k in trainer},
        resources=trainer.get("resourcesPerNode", {}),
    )
    spec = {**template["spec"], "containers": [container], "restartPolicy": "Never"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "n", **template["metadata"]},
        "spec": spec,
    }


@pytest.mark.parametrize("key", SPECS)
def test_trainjob_passes_the_api_models_strict_keys_and_the_pod_schema(key):
    job = trainjob(SPECS[key])
    validate_trainer_object(job)
    validate_object(job)
    validate_core_object(node_pod(job))
    assert job["spec"]["runtimeRef"]["name"] == "hipo-torch"
    assert job["spec"]["trainer"]["command"] == ["torchrun"]
    assert job["spec"]["trainer"]["args"][:2] == ["-m", ENTRY_MODULE]
    assert job["metadata"]["labels"][JOB_LABEL] == job["metadata"]["name"]


@pytest.mark.parametrize("key", SPECS)
def test_pytorchjob_and_each_pod_pass_strict_kubernetes_validation(key):
    job = pytorchjob(SPECS[key])
    validate_pytorchjob(job)
    for role, replica in job["spec"]["pytorchReplicaSpecs"].items():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": role.lower()},
            "spec": replica["template"]["spec"],
        }
        validate_core_object(pod)
        assert replica["template"]["metadata"]["labels"][RUN_LABEL] == "run-7f3a"
        assert pod_security_problems(pod["spec"]) == [], role  # Pod Security "restricted"
        assert replica["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    workers = job["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas", 0)
    assert 1 + workers == SPECS[key].nodes
    assert job["spec"]["nprocPerNode"] == str(SPECS[key].procs)


def test_gpu_job_shape():
    spec = SPECS["gpu-multi-node"]
    trainer = trainjob(spec)["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 4)
    assert trainer["resourcesPerNode"] == {"limits": {GPU_RESOURCE: "4"}}  # CPU, memory: the runtime's
    container = pod_template(spec)["spec"]["containers"][0]
    assert container["resources"]["limits"][GPU_RESOURCE] == "4"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pytorchjob(spec)["spec"]["runPolicy"] == {
        "cleanPodPolicy": "None",
        "backoffLimit": 0,
        "activeDeadlineSeconds": 3600,
    }


def test_task_config_reaches_the_job():
    spec = SPECS["gpu-multi-node"]
    assert spec.gpus_per_node == 4 and spec.procs == 4
    assert spec.requests == {} and spec.limits == {}  # the task's resources stay the launcher's
    assert [e["name"] for e in spec.env] == ["AWS_ACCESS_KEY_ID", "HF_HOME", "JUDGE_API_KEY"]
    job = trainjob(spec)
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod_spec = pod["template"]["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {**GPU_SCHEDULING["nodeSelector"], **TASK_CONFIG.node_selector}
    assert pod_spec["tolerations"] == [*GPU_SCHEDULING["tolerations"], *TASK_CONFIG.tolerations]
    assert pod_spec["affinity"] == TASK_CONFIG.affinity
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "hf-cache"}} in pod_spec["volumes"]
    assert pod_spec["containers"] == [
        {
            "name": REPLICATED_JOB,
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, *TASK_CONFIG.volume_mounts],
        }
    ]
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    assert env["JUDGE_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "judge", "key": "api-key"}
    assert env["PYTHONUNBUFFERED"]["value"] == "1" and GPU_SCHEDULING_ENV not in env
    # a dict with TaskConfig's field names works too; the task's value replaces one of the same name
    again = apply_task_config(spec, {"env": [{"name": "HF_HOME", "value": "/other"}]})
    assert [e.get("value") for e in again.env if e["name"] == "HF_HOME"] == ["/other"]
    assert apply_task_config(spec, None) is spec
    with pytest.raises(ManifestError, match=f"{GPU_SCHEDULING_ENV} is not JSON"):
        apply_task_config(spec, {"env": [{"name": GPU_SCHEDULING_ENV, "value": "{gpu"}]})


def test_a_cpu_only_job_gets_no_gpu_node_selector_toleration_or_limit():
    """Defect: the GPU node selector and toleration were merged into every job, so with 0 GPUs the job
    stayed Pending on a cluster without GPU nodes until its deadline."""
    scheduling_only = {"env": [{"name": GPU_SCHEDULING_ENV, "value": json.dumps(GPU_SCHEDULING)}]}
    cpu = trainjob(apply_task_config(base_spec(), scheduling_only))
    pod = node_pod(cpu)["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "resourcesPerNode" not in cpu["spec"]["trainer"]
    amd = {**GPU_SCHEDULING, "resource": "amd.com/gpu"}
    gpu = apply_task_config(
        base_spec(gpus_per_node=2), {"env": [{"name": GPU_SCHEDULING_ENV, "value": json.dumps(amd)}]}
    )
    assert trainjob(gpu)["spec"]["trainer"]["resourcesPerNode"] == {"limits": {"amd.com/gpu": "2"}}
    assert node_pod(trainjob(gpu))["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_job_spec_from_the_run_configuration():
    cfg = {"launch": {"backend": "pytorchjob", "nodes": 2, "gpus_per_node": 8, "namespace": "ml"}}
    spec = job_spec("rl", ARGS, build_config(cfg), "run-1", "mix-hipo")
    assert (spec.nodes, spec.procs, spec.namespace, spec.env_from_secrets) == (2, 8, "ml", ("hipo-s3",))
    assert spec.image.startswith("ghcr.io/hipo-pipelines/hipo-train:")
    container = pod_template(spec)["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "hipo-s3"}}]
    on_trainer = job_spec("rl", ARGS, build_config({"launch": {"backend": "trainjob"}}), "run-1", "mix-hipo")
    assert on_trainer.env_from_secrets == ()  # the ClusterTrainingRuntime declares envFrom itself
    validate_trainer_object(trainjob(on_trainer))


def test_pytorchjob_pods_request_the_configured_cpu_and_memory():
    """A PyTorchJob has no runtime to size its pods: without requests they were BestEffort."""
    cfg = {"launch": {"backend": "pytorchjob", "cpu_request": "500m", "memory_request": "3Gi", "nodes": 2}}
    job = pytorchjob(job_spec("sft", ARGS, build_config(cfg), "run-1", "mix"))
    validate_pytorchjob(job)
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        resources = replica["template"]["spec"]["containers"][0]["resources"]
        assert resources == {"requests": {"cpu": "500m", "memory": "3Gi"}}
    default = job_spec("sft", ARGS, build_config({"launch": {"backend": "pytorchjob"}}), "r", "mix")
    assert default.requests == {"cpu": "4", "memory": "16Gi"}  # those of the runtime in manifests/base
    on_trainer = job_spec("sft", ARGS, build_config({"launch": {"backend": "trainjob"}}), "r", "mix")
    assert "resourcesPerNode" not in trainjob(on_trainer)["spec"]["trainer"]  # the runtime's requests
    with pytest.raises(ConfigError, match=r"launch\.memory_request"):
        build_config({"launch": {"memory_request": "16GB"}})


def test_trainjob_refuses_env_from_it_cannot_express():
    with pytest.raises(
        ManifestError, match=r"cannot add envFrom Secrets \['hipo-s3'\].*ClusterTrainingRuntime"
    ):
        trainjob(base_spec(env_from_secrets=("hipo-s3",)))


def test_job_names_are_stable_valid_and_distinct():
    ids = ["run-7f3a", "RUN_7F3A", "a" * 200, "9f1c0d2e-5b6a-4c3d-8e7f-0123456789ab", "---"]
    tasks = {"sft": ("mix", "on"), "rl": ("mix-hipo", "on-grpo", "mix-grpo")}
    names = [job_name(stage, i, task) for stage in tasks for task in tasks[stage] for i in ids]
    assert len(set(names)) == len(names) and job_name("sft", ids[0], "mix") == names[0]
    assert job_name("rl", "run-7f3a", "on-grpo").startswith("hipo-rl-on-grpo-run-7f3a-")
    for name in names:
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 40, name
        base_spec(name=name)
    for run_id in ids:
        value = label_value(run_id)
        assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value) and len(value) <= 63
    assert label_value("run-7f3a") == "run-7f3a"
    with pytest.raises(ManifestError, match="DNS-1035"):
        base_spec(name="Bad_Name")
    with pytest.raises(ManifestError, match="nodes"):
        base_spec(nodes=0)


def test_strict_checks_name_what_is_wrong():
    job = trainjob(SPECS["cpu-one-node"])
    typo = copy.deepcopy(job)
    typo["spec"]["trainer"]["numNode"] = 2
    typo["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"
    ]["spec"]["template"]["spec"]["tolerationz"] = []
    with pytest.raises(ManifestError, match=r"spec\.trainer\.numNode.*replicatedJobs\[0\].*tolerationz"):
        validate_trainer_object(typo)
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    assert TrainerV1alpha1TrainJob.from_dict(typo) is not None  # what the strict walk is for
    assert unknown_keys(job, TrainerV1alpha1TrainJob) == []
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["trainer"]["numNodes"] = "2"
    with pytest.raises(ManifestError, match="numNodes"):
        validate_trainer_object(wrong_type)
    with pytest.raises(ManifestError, match="not a Kubeflow Trainer object"):
        validate_trainer_object({**job, "apiVersion": "trainer.kubeflow.org/v1"})

    pt = pytorchjob(SPECS["cpu-one-node"])
    bad_pod = copy.deepcopy(pt)
    bad_pod["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["envFrm"] = []
    with pytest.raises(ManifestError, match=r"containers\.0.*envFrm"):
        validate_pytorchjob(bad_pod)
    bad_spec = copy.deepcopy(pt)
    bad_spec["spec"]["runPolicy"]["backofLimit"] = 1
    bad_spec["spec"]["pytorchReplicaSpecs"]["Chief"] = {}
    with pytest.raises(ManifestError, match=r"spec\.runPolicy\.backofLimit.*pytorchReplicaSpecs\.Chief"):
        validate_object(bad_spec)
    with pytest.raises(ManifestError, match=r"no Kubernetes 1\.33 schema"):
        validate_core_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_jobs_go_to_the_namespace_the_step_runs_in_unless_configured(tmp_path, monkeypatch):
    """Defect: jobs went to namespace kubeflow, where a multi-user profile's steps may not create them."""
    from hipo.config import KubeEnv
    from hipo.launch import kube, run_state

    account = tmp_path / "namespace"
    account.write_text("team-b\n")
    monkeypatch.setattr(run_state, "SERVICE_ACCOUNT_NAMESPACE", account)
    monkeypatch.setattr(kube, "kube_env", lambda: KubeEnv(in_cluster=True, kubeconfig=None))
    config = build_config({"launch": {"backend": "trainjob"}})
    assert job_spec("sft", ARGS, config, "r", "mix").namespace == "team-b"
    pinned = build_config({"launch": {"backend": "trainjob", "namespace": "ml"}})
    assert job_spec("sft", ARGS, pinned, "r", "mix").namespace == "ml"
    kubeconfig = tmp_path / "kubeconfig"
    context = {"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team-c"}}
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [context],
                "current-context": "c",
            }
        )
    )
    assert kube.default_namespace(KubeEnv(in_cluster=False, kubeconfig=str(kubeconfig))) == "team-c"
    account.unlink()
    with pytest.raises(kube.LaunchError, match=r"set launch\.namespace"):
        kube.default_namespace(KubeEnv(in_cluster=True, kubeconfig=None))


def test_a_cluster_run_that_would_evaluate_with_vllm_without_a_gpu_stops_at_prepare(tmp_path):
    """vLLM evaluation on a cluster is a job on one GPU: with no GPUs configured, say so before training."""
    import hipo.launch
    from hipo.pipeline import steps

    overrides = ["launch.backend=trainjob", "eval.engine=vllm"]
    with pytest.raises(hipo.launch.LaunchError, match=r"eval\.engine=vllm .*launch\.gpus_per_node is 0"):
        steps.prepare({}, "", overrides, str(tmp_path / "config"), str(tmp_path / "prompts"))
    assert "gpus_per_node is 0" in (tmp_path / "error.txt").read_text()
