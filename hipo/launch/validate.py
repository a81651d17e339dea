"""Offline checks of the Kubernetes objects the project writes, each raising ``ManifestError``.

- Kubeflow Trainer objects (``trainer.kubeflow.org/v1alpha1``: TrainJob, ClusterTrainingRuntime,
  TrainingRuntime) against the pydantic models of ``kubeflow-trainer-api``, plus a strict walk that
  refuses keys the models do not declare (the models themselves silently accept unknown keys).
- Core objects (Pod, PodTemplate, Role, Secret, ...) against the Kubernetes JSON schema with
  ``kubernetes-validate`` in strict mode.
- Training Operator v1 ``PyTorchJob`` (no schema package exists): its fields as the v1 API declares
  them, and every replica's pod template as a core PodTemplate.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

TRAINER_API_VERSION = "trainer.kubeflow.org/v1alpha1"
PYTORCHJOB_API_VERSION = "kubeflow.org/v1"
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes the manifests support; its schema is checked


class ManifestError(ValueError):
    """A generated or hand-written Kubernetes object that the API server would reject or misread."""


def _trainer_models() -> dict[str, type[BaseModel]]:
    from kubeflow_trainer_api import models

    return {
        "TrainJob": models.TrainerV1alpha1TrainJob,
        "ClusterTrainingRuntime": models.TrainerV1alpha1ClusterTrainingRuntime,
        "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
    }


def _is_leaf_model(model: type[BaseModel]) -> bool:
    """The generated oneOf wrappers (Quantity, IntOrString) hold a scalar, not an object."""
    return "actual_instance" in model.model_fields


def _walk(value: Any, annotation: Any, path: str, found: list[str]) -> None:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            _walk(value, inner[0], path, found)
        return  # a union of scalars: the model's own validation covers it
    if origin is list and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, args[0], f"{path}[{i}]", found)
    elif origin is dict and isinstance(value, dict) and len(args) == 2:
        for key, item in value.items():
            _walk(item, args[1], f"{path}.{key}", found)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
        if _is_leaf_model(annotation):
            return
        fields = {(f.alias or name): f.annotation for name, f in annotation.model_fields.items()}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in fields:
                found.append(where)
            else:
                _walk(item, fields[key], where, found)


def unknown_keys(obj: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """Dotted paths of every key in ``obj`` that ``model`` (recursively) does not declare."""
    found: list[str] = []
    _walk(obj, model, "", found)
    return found


def validate_trainer_object(obj: dict[str, Any]) -> None:
    """Check a Kubeflow Trainer v1alpha1 object against the published models and for unknown keys."""
    models = _trainer_models()
    kind = obj.get("kind")
    if obj.get("apiVersion") != TRAINER_API_VERSION or kind not in models:
        raise ManifestError(
            f"not a Kubeflow Trainer object: apiVersion {obj.get('apiVersion')!r}, kind {kind!r} "
            f"(expected {TRAINER_API_VERSION} and one of {sorted(models)})"
        )
    name = (obj.get("metadata") or {}).get("name", "?")
    try:
        models[kind].from_dict(obj)
    except PydanticError as error:
        raise ManifestError(f"{kind} {name} does not match the {TRAINER_API_VERSION} API:\n{error}") from None
    extra = unknown_keys(obj, models[kind])
    if extra:
        raise ManifestError(
            f"{kind} {name} has keys the {TRAINER_API_VERSION} API does not define (the API server "
            f"would drop them silently): {', '.join(extra)}"
        )


def validate_core_object(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> None:
    """Check a core Kubernetes object against the strict JSON schema of Kubernetes ``version``."""
    import kubernetes_validate

    label = f"{obj.get('kind', '?')} {(obj.get('metadata') or {}).get('name', '?')}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ManifestError(f"{label} is invalid at {where}: {error.message}") from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise ManifestError(f"{label}: no Kubernetes {version} schema for it ({error.message})") from None


# Training Operator v1 fields (kubeflow.org/v1 PyTorchJob); None: a leaf whose value is not walked.
_RUN_POLICY = dict.fromkeys(
    ("cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
     "schedulingPolicy", "suspend", "managedBy")
)  # fmt: skip
_ELASTIC_POLICY = dict.fromkeys(
    ("minReplicas", "maxReplicas", "rdzvBackend", "rdzvPort", "rdzvHost", "rdzvId", "rdzvConf",
     "standalone", "nProcPerNode", "maxRestarts", "metrics")
)  # fmt: skip
_PYTORCHJOB_SPEC = {"runPolicy": _RUN_POLICY, "elasticPolicy": _ELASTIC_POLICY, "nprocPerNode": None}
_REPLICA_SPEC = ("replicas", "restartPolicy", "template")
_RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")


def _check_keys(value: Any, allowed: dict[str, Any], path: str, found: list[str]) -> None:
    for key, item in (value or {}).items():
        if key not in allowed:
            found.append(f"{path}.{key}")
        elif isinstance(allowed[key], dict):
            _check_keys(item, allowed[key], f"{path}.{key}", found)


def validate_pytorchjob(obj: dict[str, Any]) -> None:
    """Check a Training Operator v1 PyTorchJob: its own fields, then each replica's pod template."""
    name = (obj.get("metadata") or {}).get("name", "?")
    if obj.get("apiVersion") != PYTORCHJOB_API_VERSION or obj.get("kind") != "PyTorchJob":
        raise ManifestError(f"{name}: expected apiVersion {PYTORCHJOB_API_VERSION}, kind PyTorchJob")
    found = [k for k in obj if k not in ("apiVersion", "kind", "metadata", "spec", "status")]
    spec = obj.get("spec") or {}
    _check_keys(
        {k: v for k, v in spec.items() if k != "pytorchReplicaSpecs"}, _PYTORCHJOB_SPEC, "spec", found
    )
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if "Master" not in replicas:
        raise ManifestError(f"PyTorchJob {name}: spec.pytorchReplicaSpecs needs a Master replica")
    problems = []
    for role, replica in replicas.items():
        where = f"spec.pytorchReplicaSpecs.{role}"
        if role not in ("Master", "Worker"):
            found.append(where)
            continue
        found += [f"{where}.{k}" for k in replica if k not in _REPLICA_SPEC]
        if replica.get("restartPolicy", "Never") not in _RESTART_POLICIES:
            problems.append(f"{where}.restartPolicy must be one of {_RESTART_POLICIES}")
        if not isinstance(replica.get("replicas", 1), int) or replica.get("replicas", 1) < 1:
            problems.append(f"{where}.replicas must be a positive integer")
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"{name}-{role.lower()}"}}
        validate_core_object({**template, "template": replica.get("template") or {}})
    if found:
        problems.append("keys the kubeflow.org/v1 API does not define: " + ", ".join(found))
    if problems:
        raise ManifestError(f"PyTorchJob {name}: " + "; ".join(problems))


def validate_object(obj: dict[str, Any]) -> None:
    """Dispatch on apiVersion: Trainer objects, PyTorchJobs and core objects each to their check."""
    api_version = str(obj.get("apiVersion", ""))
    if api_version.startswith("trainer.kubeflow.org/"):
        validate_trainer_object(obj)
    elif api_version == PYTORCHJOB_API_VERSION:
        validate_pytorchjob(obj)
    else:
        validate_core_object(obj)


# Pod Security Standards, "restricted" level (which includes "baseline"), as published at
# kubernetes.io/docs/concepts/security/pod-security-standards for Kubernetes 1.33.
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret", "image",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _security_context_problems(where: str, context: dict[str, Any]) -> list[str]:
    """The rules that apply alike to the pod's and to each container's securityContext."""
    problems = []
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: windowsOptions.hostProcess")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where}: seccompProfile Unconfined")
    if (context.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"{where}: appArmorProfile {context['appArmorProfile']['type']}")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        problems.append(f"{where}: seLinuxOptions {selinux}")
    if context.get("runAsUser") == 0:
        problems.append(f"{where}: runAsUser 0")
    return problems


def pod_security_problems(pod: dict[str, Any]) -> list[str]:
    """What keeps pod spec ``pod`` from the Pod Security Standards' restricted level ([] when it
    passes): baseline's host, privilege, capability, volume, port, AppArmor, SELinux, /proc, seccomp
    and sysctl rules, then restricted's volume types, no privilege escalation, non-root, seccomp
    RuntimeDefault or Localhost, and capabilities dropped to ALL (NET_BIND_SERVICE alone added)."""
    problems = [f"spec.{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    pod_context = pod.get("securityContext") or {}
    problems += _security_context_problems("spec.securityContext", pod_context)
    problems += [
        f"spec.securityContext.sysctls: {s.get('name')} is not a safe sysctl"
        for s in pod_context.get("sysctls") or []
        if s.get("name") not in _SAFE_SYSCTLS
    ]
    for volume in pod.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume.get('name')}: type {sorted(types - _RESTRICTED_VOLUMES)}")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    kinds = ("initContainers", "containers", "ephemeralContainers")
    containers = [c for kind in kinds for c in pod.get(kind) or []]
    for container in containers:
        where = f"container {container.get('name')}"
        context = container.get("securityContext") or {}
        problems += _security_context_problems(where, context)
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount {context['procMount']}")
        if any(p.get("hostPort") for p in container.get("ports") or []):
            problems.append(f"{where}: hostPort")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (on the pod or the container)")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as UID 0")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        added = set(capabilities.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            beyond = "baseline" if added - _BASELINE_CAPABILITIES else "restricted"
            problems.append(f"{where}: adds capabilities {sorted(added)} ({beyond} forbids them)")
    return problems
