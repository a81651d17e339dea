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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hipo.launch.validate import PYTORCHJOB_API_VERSION, TRAINER_API_VERSION, ManifestError

Stage = Literal["sft", "rl"]
REPLICATED_JOB = "node"  # the runtime's replicated job and trainer container (Trainer v2 convention)
PYTORCH_CONTAINER = "pytorch"  # the container name the Training Operator requires
PATCH_MANAGER = "hipo-pipelines.dev/launcher"
JOB_LABEL = "hipo-pipelines.dev/job"
RUN_LABEL = "hipo-pipelines.dev/run-id"
GPU_RESOURCE = "nvidia.com/gpu"
ENTRY_MODULE = "hipo.launch.entry"
SHM_VOLUME = "dshm"
_MAX_NAME = 40  # TrainJob → JobSet → Job → pod names and hostnames must stay within 63 characters


def plain_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    """An environment variable read from one key of a Secret (the value never enters the manifest)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


@dataclass(frozen=True)
class JobSpec:
    """Everything one training job needs, independent of the API that will run it.

    ``args`` follow ``python -m hipo.launch.entry`` (stage, config and output URIs, ``hipo train``
    options). ``env`` holds Kubernetes EnvVar dicts (``plain_env``, ``secret_env``); ``volumes`` and
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
            **self.extra_labels,
        }


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters, alphanumeric ends), hashed where it had to change."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    if clean == text and len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-._')}-{digest}".lstrip("-")


def job_name(stage: Stage, run_id: str) -> str:
    """A deterministic job name per (stage, run): a retried step finds the job its first attempt made."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:20].strip("-")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return "-".join(part for part in ("hipo", stage, slug, digest) if part)


def _resources(spec: JobSpec) -> dict[str, Any]:
    limits = dict(spec.limits)
    if spec.gpus_per_node:
        limits[GPU_RESOURCE] = str(spec.gpus_per_node)
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
    container: dict[str, Any] = {
        "name": PYTORCH_CONTAINER,
        "image": spec.image,
        "command": ["torchrun"],
        "args": ["-m", ENTRY_MODULE, *spec.args],
        "env": _env(spec),
        "volumeMounts": mounts,
    }
    if spec.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.env_from_secrets]
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod = {"containers": [container], "volumes": volumes, **_scheduling(spec)}
    return {"metadata": {"labels": spec.labels}, "spec": pod}


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
    """Merge what KFP passed through a ``dsl.TaskConfig`` (resources, env, volumes, node selector,
    tolerations, affinity set on the launcher's task) into ``spec``; the task's values win.

    A GPU limit on the task (``set_accelerator_type/limit``) becomes the job's GPUs per node.
    Accepts a ``kfp.dsl.TaskConfig`` or a dict with its field names.
    """
    if task_config is None:
        return spec

    def get(name: str) -> Any:
        value = (
            task_config.get(name) if isinstance(task_config, Mapping) else getattr(task_config, name, None)
        )
        return value or None

    changes: dict[str, Any] = {}
    resources = get("resources") or {}
    requests = {str(k): str(v) for k, v in (resources.get("requests") or {}).items()}
    limits = {str(k): str(v) for k, v in (resources.get("limits") or {}).items()}
    gpus = limits.pop(GPU_RESOURCE, None) or requests.pop(GPU_RESOURCE, None)
    if gpus is not None:
        try:
            changes["gpus_per_node"] = int(gpus)
        except ValueError:
            raise ManifestError(f"task GPU limit {gpus!r} is not a whole number of GPUs") from None
    if requests:
        changes["requests"] = {**spec.requests, **requests}
    if limits:
        changes["limits"] = {**spec.limits, **limits}
    if get("env"):
        changes["env"] = _by_key(spec.env, get("env"), "name")
    if get("volumes"):
        changes["volumes"] = _by_key(spec.volumes, get("volumes"), "name")
    if get("volume_mounts"):
        changes["volume_mounts"] = _by_key(spec.volume_mounts, get("volume_mounts"), "mountPath")
    if get("node_selector"):
        changes["node_selector"] = {**spec.node_selector, **get("node_selector")}
    if get("tolerations"):
        changes["tolerations"] = (
            *spec.tolerations,
            *(t for t in get("tolerations") if t not in spec.tolerations),
        )
    if get("affinity"):
        changes["affinity"] = get("affinity")
    return replace(spec, **changes)
