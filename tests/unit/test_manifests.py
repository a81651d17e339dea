"""manifests/: the kustomize overlays render offline and every object is one the API server accepts.

Core objects are checked against the strict Kubernetes schema, Trainer objects against the
kubeflow-trainer-api models with unknown keys refused (hipo.launch.validate), and the install against
the contracts the code relies on: the launcher's RBAC rules, LaunchConfig's names, hipo.images.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp_server_api
import pytest
import yaml

from hipo.config import LaunchConfig
from hipo.images import STEP_IMAGE, TRAIN_IMAGE
from hipo.launch.manifests import REPLICATED_JOB, SHM_VOLUME
from hipo.launch.permissions import LAUNCHER_RULES
from hipo.launch.validate import validate_core_object, validate_trainer_object

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("dev", "prod")
SERVICES_NAMESPACE = "hipo"
PLACEHOLDER = "REPLACE_ME"
NOT_SECRET = {"POSTGRES_USER", "POSTGRES_DB"}  # names, not credentials
WORKLOADS = {"Deployment", "StatefulSet", "Job"}  # pods that serve: Deployment and StatefulSet


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: install Debian's kubernetes-client to render manifests offline")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def find(objs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]


def runtime(overlay: str) -> dict[str, Any]:
    (obj,) = find(render(overlay), "ClusterTrainingRuntime", LaunchConfig().runtime)
    return obj


def runtime_pod(obj: dict[str, Any]) -> dict[str, Any]:
    (job,) = obj["spec"]["template"]["spec"]["replicatedJobs"]
    return job["template"]["spec"]["template"]["spec"]


def pod_specs(objs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind, object, pod spec) of every workload and of the training runtime."""
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            yield obj["kind"], obj, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "ClusterTrainingRuntime":
            yield obj["kind"], obj, runtime_pod(obj)


def container_problems(kind: str, pod: dict[str, Any]) -> list[str]:
    """Missing requests/limits on any container; missing probes on the containers of servers."""
    problems = []
    for c in pod.get("initContainers", []) + pod["containers"]:
        resources = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                problems.append(f"{c['name']}: {part} needs cpu and memory")
        if kind in ("Deployment", "StatefulSet"):
            problems += [f"{c['name']}: no {p}" for p in ("livenessProbe", "readinessProbe") if p not in c]
    return problems


def secret_problems(secret: dict[str, Any]) -> list[str]:
    """Values that look real: only placeholders, in-cluster URLs and the NOT_SECRET names may stay."""
    problems = []
    for key, value in {**secret.get("stringData", {}), **secret.get("data", {})}.items():
        in_cluster_url = value.startswith("http://") and ".svc.cluster.local:" in value
        if value != PLACEHOLDER and not in_cluster_url and key not in NOT_SECRET:
            problems.append(f"{secret['metadata']['name']}.{key}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_object_passes_the_strict_schema(overlay):
    core = [o for o in render(overlay) if not o["apiVersion"].startswith("trainer.kubeflow.org/")]
    assert {"Namespace", "Secret", "Role", "RoleBinding", "ServiceAccount", "Service", "Job"} <= {
        o["kind"] for o in core
    }
    for obj in core:
        validate_core_object(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runtime_passes_the_trainer_api_with_no_unknown_keys(overlay):
    validate_trainer_object(runtime(overlay))


def test_example_trainjob_passes_the_trainer_api_and_uses_the_runtime_and_image():
    job = yaml.safe_load((MANIFESTS / "examples" / "trainjob.yaml").read_text())
    validate_trainer_object(job)
    assert job["spec"]["runtimeRef"]["name"] == LaunchConfig().runtime
    assert job["metadata"]["namespace"] == LaunchConfig().namespace
    assert job["spec"]["trainer"]["image"] == TRAIN_IMAGE


def test_example_recurring_run_is_a_kfp_v2beta1_recurring_run():
    body = yaml.safe_load((MANIFESTS / "examples" / "recurring-run.yaml").read_text())
    unknown = [k for k in body if k not in kfp_server_api.V2beta1RecurringRun.attribute_map]
    unknown += [k for k in body["trigger"] if k not in kfp_server_api.V2beta1Trigger.attribute_map]
    unknown += [
        k
        for k in body["trigger"]["cron_schedule"]
        if k not in kfp_server_api.V2beta1CronSchedule.attribute_map
    ]
    unknown += [
        k for k in body["runtime_config"] if k not in kfp_server_api.V2beta1RuntimeConfig.attribute_map
    ]
    assert not unknown, f"keys the KFP v2beta1 API does not define: {unknown}"
    kfp_server_api.V2beta1RecurringRun(
        **{**body, "trigger": kfp_server_api.V2beta1Trigger(
            cron_schedule=kfp_server_api.V2beta1CronSchedule(**body["trigger"]["cron_schedule"])
        )}
    )  # fmt: skip
    assert len(body["trigger"]["cron_schedule"]["cron"].split()) == 6, (
        "KFP cron has six fields, seconds first"
    )
    assert body["mode"] in ("ENABLE", "DISABLE")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_servers_have_probes(overlay):
    kinds = set()
    for kind, obj, pod in pod_specs(render(overlay)):
        kinds.add(kind)
        assert not container_problems(kind, pod), f"{kind} {obj['metadata']['name']}"
    assert kinds == WORKLOADS | {"ClusterTrainingRuntime"}


def test_the_container_check_finds_a_server_without_limits_or_probes():
    pod = {"containers": [{"name": "web", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    assert container_problems("Deployment", pod) == [
        "web: limits needs cpu and memory",
        "web: no livenessProbe",
        "web: no readinessProbe",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_carry_placeholders_only(overlay):
    secrets = find(render(overlay), "Secret")
    assert {s["metadata"]["name"] for s in secrets} >= set(LaunchConfig().env_secrets) | {"hipo-judge"}
    for secret in secrets:
        assert not secret_problems(secret)
    real = {"metadata": {"name": "leak"}, "stringData": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"}}
    assert secret_problems(real) == ["leak.AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_resolve_in_their_namespace(overlay):
    objs = render(overlay)
    keys = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): set(s.get("stringData", {}))
        | set(s.get("data", {}))
        for s in find(objs, "Secret")
    }
    for _, obj, pod in pod_specs(objs):
        namespace = obj["metadata"].get("namespace", LaunchConfig().namespace)  # the runtime: its jobs'
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                assert (namespace, source["secretRef"]["name"]) in keys, (
                    f"{obj['metadata']['name']}: {source}"
                )
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in keys[(namespace, ref["name"])], f"{obj['metadata']['name']}: {ref}"


def test_role_grants_exactly_what_the_launcher_uses():
    (role,) = find(render("prod"), "Role", "hipo-launcher")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {(r.api_group, r.resource, v) for r in LAUNCHER_RULES for v in r.verbs}
    assert granted - needed == set(), "the Role grants more than the launcher uses"
    assert needed - granted == set(), "the launcher needs grants the Role lacks"
    assert not any(rule.get("resourceNames") or rule.get("nonResourceURLs") for rule in role["rules"])


def test_launcher_role_is_bound_to_the_pipeline_runner_in_the_launch_namespace():
    objs = render("prod")
    namespace = LaunchConfig().namespace
    (binding,) = find(objs, "RoleBinding", "hipo-launcher")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "hipo-launcher",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": namespace}
    ]
    (role,) = find(objs, "Role", "hipo-launcher")
    assert role["metadata"]["namespace"] == namespace
    (account,) = find(objs, "ServiceAccount", LaunchConfig().service_account)
    assert account["metadata"]["namespace"] == namespace
    assert not find(objs, "Namespace", namespace), (
        "KFP owns its namespace: deleting the install must not delete it"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runtime_keeps_the_launcher_contract(overlay):
    obj = runtime(overlay)
    launch = LaunchConfig()
    assert "torch" in obj["spec"]["mlPolicy"]
    (job,) = obj["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == REPLICATED_JOB
    pod = runtime_pod(obj)
    (container,) = pod["containers"]
    assert container["name"] == REPLICATED_JOB
    assert container["image"] == TRAIN_IMAGE
    assert pod["serviceAccountName"] == launch.service_account
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == list(launch.env_secrets)
    assert {"NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "TORCH_NCCL_ASYNC_ERROR_HANDLING"} <= {
        e["name"] for e in container["env"]
    }
    (shm,) = [v for v in pod["volumes"] if v["name"] == SHM_VOLUME]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": SHM_VOLUME, "mountPath": "/dev/shm"} in container["volumeMounts"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_project_tags_or_pinned_releases(overlay):
    images = {c["image"] for _, _, pod in pod_specs(render(overlay)) for c in pod["containers"]}
    assert {STEP_IMAGE, TRAIN_IMAGE} <= images
    for image in images - {STEP_IMAGE, TRAIN_IMAGE}:
        tag = image.rpartition(":")[2]
        assert "/" not in tag and tag not in ("", "latest") and any(ch.isdigit() for ch in tag), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_live_in_their_namespace_and_select_their_pods(overlay):
    objs = render(overlay)
    assert find(objs, "Namespace", SERVICES_NAMESPACE)
    workloads = [o for o in objs if o["kind"] in {"Deployment", "StatefulSet"}]
    for service in find(objs, "Service"):
        assert service["metadata"]["namespace"] == SERVICES_NAMESPACE
        selector = service["spec"]["selector"].items()
        (target,) = [w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        ports = {p["name"] for c in target["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, service["metadata"]["name"]


def _storage(overlay: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"]["resources"]["requests"]["storage"]
        for p in find(render(overlay), "PersistentVolumeClaim")
    }


def test_prod_runs_training_on_gpu_nodes_and_dev_on_one_small_node():
    prod, dev = runtime_pod(runtime("prod")), runtime_pod(runtime("dev"))
    assert prod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in prod["tolerations"]
    assert prod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "nodeSelector" not in dev and "tolerations" not in dev
    assert "nvidia.com/gpu" not in dev["containers"][0]["resources"]["limits"]
    assert runtime("dev")["spec"]["mlPolicy"]["numNodes"] == 1
    assert _storage("dev") == {"minio-data": "5Gi", "postgres-data": "1Gi"}
    assert _storage("prod") == {"minio-data": "1Ti", "postgres-data": "50Gi"}
