"""Pure builders of the training job objects: a typed ``JobSpec`` in, API-shaped dicts out.

A ``JobSpec`` becomes a Kubeflow Trainer v2 ``TrainJob`` (``trainjob``) or a Training Operator v1
``PyTorchJob`` (``pytorchjob``). Both run ``torchrun -m hipo.launch.entry ...`` on every node; torchrun
takes the node count, processes per node, node rank and master address from the ``PET_*`` variables
that the torch runtime (and the Training Operator, given ``nprocPerNode``) injects.

Contract with the ClusterTrainingRuntime in manifests/ (``LaunchConfig.runtime``, default
``hipo-torch``): a torch ``mlPolicy``, one replicated job named ``node`` whose container is named
``node``. TrainJob's v1alpha1 patches cannot add ``envFrom`` to that container, so Secrets passed as
whole environments (``LaunchConfig.env_secrets``) must be declared by the runtime itself; single keys
(``secret_env``, e.g. from kfp-kubernetes ``use_secret_as_env`` through ``TaskConfig``) work on both.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hipo.launch.images import IMAGE_UID, TRAIN_IMAGE
from hipo.launch.validate import PYTORCHJOB_API_VERSION, TRAINER_API_VERSION, ManifestError

Stage = Literal["sft", "rl", "eval"]  # eval: a vLLM evaluation on the train image
REPLICATED_JOB = "node"  # the runtime's replicated job and trainer container (Trainer v2 convention)
PYTORCH_CONTAINER = "pytorch"  # the container name the Training Operator requires
PATCH_MANAGER = "hipo-pipelines.dev/launcher"
JOB_LABEL = "hipo-pipelines.dev/job"
RUN_LABEL = "hipo-pipelines.dev/run-id"
DIGEST_LABEL = "hipo-pipelines.dev/task-digest"  # what the job was created to do; see task_digest()
GPU_RESOURCE = "nvidia.com/gpu"
# An env var the compiled pipeline sets on the training tasks: JSON {"resource", "nodeSelector",
# "tolerations"} for GPU nodes. KFP passes it in the TaskConfig; the launcher applies it to a job only
# when that job requests GPUs (a CPU-only job with a GPU node selector stays Pending).
GPU_SCHEDULING_ENV = "HIPO_GPU_SCHEDULING"
# The train image the pipeline was compiled with (hipo compile --train-image-digest pins it): the
# job's image unless launch.image names another. Like the one above, it never reaches the job's env.
TRAIN_IMAGE_ENV = "HIPO_TRAIN_IMAGE"
_LAUNCHER_ENV = (GPU_SCHEDULING_ENV, TRAIN_IMAGE_ENV)
ENTRY_MODULE = "hipo.launch.entry"
SHM_VOLUME = "dshm"
# Pod Security "restricted" for the PyTorchJob pods (a TrainJob's come from its runtime): the image's
# numeric user, no privilege escalation, no capabilities, the runtime's seccomp profile, a read-only
# root filesystem with emptyDirs for what training writes (/tmp; $HOME: the Hugging Face and Triton caches)
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "runAsGroup": IMAGE_UID,
    "fsGroup": IMAGE_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
WRITABLE_DIRS = {"tmp": "/tmp", "home": "/home/hipo"}
# Kubeflow profile namespaces inject Istio sidecars: they keep a finished pod running
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}
_MAX_NAME = 40  # TrainJob → JobSet → Job → pod names and hostnames must stay within 63 characters


def plain_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    """An environment variable read from one key of a Secret (the value never enters the manifest)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


@dataclass(frozen=True)
class JobSpec:
    """Everything one training job needs, independent of the API that will run it.

    ``args`` follow ``python -m hipo.launch.entry`` (stage, config and output URIs, the input
    URIs). ``env`` holds Kubernetes EnvVar dicts (``plain_env``, ``secret_env``); ``volumes`` and
    ``volume_mounts`` Kubernetes Volume / VolumeMount dicts. A memory-backed ``/dev/shm`` is always
    added (NCCL and data loaders need more than the container default of 64 MiB).
    """

    name: str
    namespace: str
    stage: Stage
    run_id: str
    args: tuple[str, ...]
    image: str
    runtime: str = "hipo-torch"
    nodes: int = 1
    gpus_per_node: int = 0
    gpu_resource: str = GPU_RESOURCE
    procs_per_node: int = 1  # used where no GPUs are requested
    requests: Mapping[str, str] = field(default_factory=dict)  # cpu, memory, ... per node
    limits: Mapping[str, str] = field(default_factory=dict)
    env: tuple[dict[str, Any], ...] = ()
    env_from_secrets: tuple[str, ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    shm_size: str | None = None  # sizeLimit of /dev/shm; None: bounded by the pod's memory limit
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    service_account: str = ""
    deadline_s: int | None = None
    digest: str = ""  # task_digest() of the stage, task, configuration and inputs
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", self.name) or len(self.name) > _MAX_NAME:
            raise ManifestError(
                f"job name {self.name!r} must be a DNS-1035 label of at most {_MAX_NAME} characters "
                "(lower-case letters, digits, '-'; starting with a letter): use job_name()"
            )
        if self.nodes < 1 or self.gpus_per_node < 0 or self.procs_per_node < 1:
            raise ManifestError(
                f"job {self.name}: nodes ({self.nodes}) and procs_per_node ({self.procs_per_node}) must be "
                f"at least 1, gpus_per_node ({self.gpus_per_node}) at least 0"
            )

    @property
    def procs(self) -> int:
        """Processes per node: one per GPU, else ``procs_per_node`` CPU processes."""
        return self.gpus_per_node or self.procs_per_node

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "hipo",
            "app.kubernetes.io/component": f"train-{self.stage}",
            JOB_LABEL: self.name,
            RUN_LABEL: label_value(self.run_id),
            **({DIGEST_LABEL: self.digest} if self.digest else {}),
            **self.extra_labels,
        }


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters, alphanumeric ends), hashed where it had to change."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    if clean == text and len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-._')}-{digest}".lstrip("-")


def job_name(stage: Stage, run_id: str, task: str) -> str:
    """A deterministic job name per (stage, task, run), e.g. ``hipo-rl-on-grpo-<run>-<hash>``: every
    training task of a run (``task``: its arm, e.g. the cold-start set and RL algorithm) gets its own
    job, and a retried step finds the job its first attempt made."""
    task_slug = re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")
    digest = hashlib.sha256(f"{stage}\0{task}\0{run_id}".encode()).hexdigest()[:8]
    head = "-".join(part for part in ("hipo", stage, task_slug) if part)[: _MAX_NAME - 10].strip("-")
    room = _MAX_NAME - len(head) - len(digest) - 2
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[: max(room, 0)].strip("-")
    return "-".join(part for part in (head, slug, digest) if part)


def task_digest(stage: Stage, task: str, config_yaml: str, inputs: Sequence[str]) -> str:
    """What a job is for, as a label value: two attempts of one task agree, any other task differs."""
    text = "\0".join((stage, task, config_yaml, *inputs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resources(spec: JobSpec) -> dict[str, Any]:
    limits = dict(spec.limits)
    if spec.gpus_per_node:
        limits[spec.gpu_resource] = str(spec.gpus_per_node)
    return {k: v for k, v in (("requests", dict(spec.requests)), ("limits", limits)) if v}


def _env(spec: JobSpec) -> list[dict[str, Any]]:
    names = {e["name"] for e in spec.env}
    return [*spec.env, *(plain_env(n, v) for n, v in (("PYTHONUNBUFFERED", "1"),) if n not in names)]


def _volumes(spec: JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shm: dict[str, Any] = {"medium": "Memory", **({"sizeLimit": spec.shm_size} if spec.shm_size else {})}
    volumes = [{"name": SHM_VOLUME, "emptyDir": shm}, *spec.volumes]
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}, *spec.volume_mounts]
    return volumes, mounts


def _scheduling(spec: JobSpec) -> dict[str, Any]:
    fields = {
        "serviceAccountName": spec.service_account,
        "nodeSelector": dict(spec.node_selector),
        "tolerations": list(spec.tolerations),
        "affinity": spec.affinity,
    }
    return {k: v for k, v in fields.items() if v}


def _metadata(spec: JobSpec) -> dict[str, Any]:
    return {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels}


def trainjob(spec: JobSpec) -> dict[str, Any]:
    """A ``trainer.kubeflow.org/v1alpha1`` TrainJob on the ClusterTrainingRuntime ``spec.runtime``."""
    if spec.env_from_secrets:
        raise ManifestError(
            f"TrainJob {spec.name}: v1alpha1 cannot add envFrom Secrets {list(spec.env_from_secrets)} to the "
            f"runtime's container: declare them in the ClusterTrainingRuntime {spec.runtime!r}, or pass "
            "single keys with secret_env (kfp-kubernetes use_secret_as_env on the task)"
        )
    volumes, mounts = _volumes(spec)
    trainer: dict[str, Any] = {
        "image": spec.image,
        "command": ["torchrun"],
        "args": ["-m", ENTRY_MODULE, *spec.args],
        "numNodes": spec.nodes,
        "numProcPerNode": spec.procs,
        "env": _env(spec),
    }
    resources = _resources(spec)
    if resources:
        trainer["resourcesPerNode"] = resources
    pod_spec = {"volumes": volumes, "containers": [{"name": REPLICATED_JOB, "volumeMounts": mounts}]}
    pod = {"metadata": {"labels": spec.labels}, "spec": {**pod_spec, **_scheduling(spec)}}
    replicated = {"name": REPLICATED_JOB, "template": {"spec": {"template": pod}}}
    patch = {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [replicated]}}},
    }
    job_spec: dict[str, Any] = {
        "runtimeRef": {
            "apiGroup": "trainer.kubeflow.org",
            "kind": "ClusterTrainingRuntime",
            "name": spec.runtime,
        },
        "trainer": trainer,
        "runtimePatches": [patch],
    }
    if spec.deadline_s:
        job_spec["activeDeadlineSeconds"] = spec.deadline_s
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": "TrainJob",
        "metadata": _metadata(spec),
        "spec": job_spec,
    }


def pod_template(spec: JobSpec) -> dict[str, Any]:
    """The pod template of every PyTorchJob replica (container ``pytorch``, as the operator requires)."""
    volumes, mounts = _volumes(spec)
    volumes += [{"name": name, "emptyDir": {}} for name in WRITABLE_DIRS]
    mounts += [{"name": name, "mountPath": path} for name, path in WRITABLE_DIRS.items()]
    container: dict[str, Any] = {
        "name": PYTORCH_CONTAINER,
        "image": spec.image,
        # a tag may be rebuilt under the nodes' cached copy; a digest cannot
        "imagePullPolicy": "IfNotPresent" if "@sha256:" in spec.image else "Always",
        "command": ["torchrun"],
        "args": ["-m", ENTRY_MODULE, *spec.args],
        "env": _env(spec),
        "volumeMounts": mounts,
        "securityContext": CONTAINER_SECURITY,
    }
    if spec.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.env_from_secrets]
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod = {
        "containers": [container],
        "volumes": volumes,
        "securityContext": POD_SECURITY,
        **_scheduling(spec),
    }
    return {"metadata": {"labels": spec.labels, "annotations": NO_SIDECAR}, "spec": pod}


def pytorchjob(spec: JobSpec) -> dict[str, Any]:
    """A ``kubeflow.org/v1`` PyTorchJob: one Master and ``nodes - 1`` Workers, no pod restarts (a failed
    rank fails the job, and KFP's retry policy decides what happens next)."""
    template = pod_template(spec)
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if spec.nodes > 1:
        replicas["Worker"] = {"replicas": spec.nodes - 1, "restartPolicy": "Never", "template": template}
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if spec.deadline_s:
        run_policy["activeDeadlineSeconds"] = spec.deadline_s
    return {
        "apiVersion": PYTORCHJOB_API_VERSION,
        "kind": "PyTorchJob",
        "metadata": _metadata(spec),
        "spec": {"nprocPerNode": str(spec.procs), "runPolicy": run_policy, "pytorchReplicaSpecs": replicas},
    }


def _by_key(items: Sequence[dict[str, Any]], extra: Sequence[dict[str, Any]], key: str) -> tuple[Any, ...]:
    """``items`` with ``extra`` appended, an entry of ``extra`` replacing one of the same ``key``."""
    replaced = {e[key] for e in extra if key in e}
    return (*(i for i in items if i.get(key) not in replaced), *extra)


def apply_task_config(spec: JobSpec, task_config: Any) -> JobSpec:
    """Merge what KFP passed through a ``dsl.TaskConfig`` (env, volumes, node selector, tolerations,
    affinity) into ``spec``; the task's values win. The compiled ``TRAIN_IMAGE_ENV`` replaces the
    default train image (a ``launch.image`` of the run's own stays).

    The task's resources are not merged: they are the launcher pod's own CPU and memory (the pipeline
    passes them through with ``apply_to_task``, so KFP puts them on that pod). GPUs per node come from
    the run configuration (``launch.gpus_per_node``), CPU and memory per node from the training
    runtime. The GPU scheduling of ``GPU_SCHEDULING_ENV`` (resource name, node selector, tolerations)
    is applied only when the job requests GPUs. Accepts a ``kfp.dsl.TaskConfig`` or a dict with its
    field names.
    """
    if task_config is None:
        return spec

    def get(name: str) -> Any:
        value = (
            task_config.get(name) if isinstance(task_config, Mapping) else getattr(task_config, name, None)
        )
        return value or None

    changes: dict[str, Any] = {}
    env = [e for e in get("env") or () if e.get("name") not in _LAUNCHER_ENV]
    if env:
        changes["env"] = _by_key(spec.env, env, "name")
    if get("volumes"):
        changes["volumes"] = _by_key(spec.volumes, get("volumes"), "name")
    if get("volume_mounts"):
        changes["volume_mounts"] = _by_key(spec.volume_mounts, get("volume_mounts"), "mountPath")
    node_selector = dict(get("node_selector") or {})
    tolerations = list(get("tolerations") or ())
    scheduling = gpu_scheduling(get("env") or ())
    if spec.gpus_per_node and scheduling:
        changes["gpu_resource"] = scheduling.get("resource") or spec.gpu_resource
        node_selector = {**scheduling.get("nodeSelector", {}), **node_selector}
        tolerations = [*scheduling.get("tolerations", []), *tolerations]
    if node_selector:
        changes["node_selector"] = {**spec.node_selector, **node_selector}
    if tolerations:
        changes["tolerations"] = (*spec.tolerations, *(t for t in tolerations if t not in spec.tolerations))
    if get("affinity"):
        changes["affinity"] = get("affinity")
    compiled = next((e.get("value") for e in get("env") or () if e.get("name") == TRAIN_IMAGE_ENV), None)
    if compiled and spec.image == TRAIN_IMAGE:
        changes["image"] = compiled
    return replace(spec, **changes)


def gpu_scheduling(env: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The GPU scheduling the compiled pipeline put in ``GPU_SCHEDULING_ENV`` ({} where it is absent)."""
    value = next((e.get("value") for e in env if e.get("name") == GPU_SCHEDULING_ENV), None)
    if not value:
        return {}
    try:
        scheduling = json.loads(value)
    except ValueError:
        raise ManifestError(f"{GPU_SCHEDULING_ENV} is not JSON: {value!r}") from None
    if not isinstance(scheduling, dict):
        raise ManifestError(f"{GPU_SCHEDULING_ENV} must be a JSON object, got {value!r}")
    return scheduling
