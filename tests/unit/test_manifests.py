"""manifests/: the kustomize overlays render offline and every object is one the API server accepts.

Core objects are checked against the strict Kubernetes schema, Trainer objects against the
kubeflow-trainer-api models with unknown keys refused (hipo.launch.validate), every pod against the
Pod Security Standards' restricted level, and the install against the contracts the code relies on:
the launcher's RBAC rules, LaunchConfig's names, hipo.launch.images. The overlays render as an installer
would: from a copy of manifests/ with each secrets env file written from its example.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp_server_api
import pytest
import yaml

from hipo.config import LaunchConfig
from hipo.launch.images import STEP_IMAGE, TRAIN_IMAGE
from hipo.launch.manifests import REPLICATED_JOB, SHM_VOLUME
from hipo.launch.permissions import LAUNCHER_RULES
from hipo.launch.validate import pod_security_problems, validate_core_object, validate_trainer_object

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("dev", "prod")  # the cluster installs; "profile" is a Kubeflow profile namespace's part
SERVICES_NAMESPACE = "hipo"
STANDALONE_NAMESPACE = "kubeflow"  # standalone KFP's, where dev and prod install the pipeline's part
PROFILE_NAMESPACE = "kubeflow-user-example-com"  # the example profile of overlays/profile
WORKLOADS = {"Deployment", "StatefulSet", "Job"}  # pods that serve: Deployment and StatefulSet


def _kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: install Debian's kubernetes-client to render manifests offline")
    return subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)


@functools.cache
def installed_copy() -> Path:
    """manifests/ copied, with every ``*.env`` written from its ``*.env.example`` (what an installer does)."""
    copy = Path(tempfile.mkdtemp(prefix="hipo-manifests-")) / "manifests"
    shutil.copytree(MANIFESTS, copy, ignore=shutil.ignore_patterns("*.env"))
    for example in copy.rglob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    return copy


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = _kustomize(installed_copy() / "overlays" / overlay)
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


@pytest.mark.parametrize("overlay", [*OVERLAYS, "profile"])
def test_every_core_object_passes_the_strict_schema(overlay):
    core = [o for o in render(overlay) if not o["apiVersion"].startswith("trainer.kubeflow.org/")]
    assert {"Secret", "Role", "RoleBinding", "ServiceAccount"} <= {o["kind"] for o in core}
    for obj in core:
        validate_core_object(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runtime_passes_the_trainer_api_with_no_unknown_keys(overlay):
    validate_trainer_object(runtime(overlay))


def test_example_trainjob_passes_the_trainer_api_and_uses_the_runtime_and_image():
    job = yaml.safe_load((MANIFESTS / "examples" / "trainjob.yaml").read_text())
    validate_trainer_object(job)
    assert job["spec"]["runtimeRef"]["name"] == LaunchConfig().runtime
    assert job["metadata"]["namespace"] == STANDALONE_NAMESPACE
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


def test_no_secret_value_is_applied_from_the_repository():
    """Defect: `kubectl apply -k` applied Secret templates holding REPLACE_ME over a cluster's real
    Secrets. No Secret is in the manifests any more; the overlays generate them from git-ignored env
    files, and a checkout without those files does not render at all."""
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "manifests"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked and not [path for path in tracked if path.endswith(".env")]
    for path in tracked:
        if path.endswith(".yaml"):
            docs = yaml.safe_load_all((ROOT / path).read_text())
            kinds = {doc.get("kind") for doc in docs if isinstance(doc, dict)}
            assert "Secret" not in kinds, f"{path} holds a Secret: generate it from an env file instead"
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "manifests/secrets/pipeline/s3.env"], check=False
    )
    assert ignored.returncode == 0, "manifests/secrets/*/*.env must be git-ignored"
    fresh = Path(tempfile.mkdtemp(prefix="hipo-fresh-")) / "manifests"
    shutil.copytree(MANIFESTS, fresh, ignore=shutil.ignore_patterns("*.env"))
    for overlay in (*OVERLAYS, "profile"):
        result = _kustomize(fresh / "overlays" / overlay)
        assert result.returncode != 0 and "s3.env" in result.stderr, overlay


@pytest.mark.parametrize("overlay", [*OVERLAYS, "profile"])
def test_secrets_hold_what_the_env_files_say(overlay):
    import base64

    secrets = find(render(overlay), "Secret")
    assert {s["metadata"]["name"] for s in secrets} >= set(LaunchConfig().env_secrets) | {"hipo-judge"}
    for secret in secrets:
        folder = "pipeline" if secret["metadata"]["name"] in ("hipo-s3", "hipo-judge") else "services"
        env = (
            installed_copy() / "secrets" / folder / f"{secret['metadata']['name'].removeprefix('hipo-')}.env"
        )
        lines = [line for line in env.read_text().splitlines() if line and not line.startswith("#")]
        expected = dict(line.split("=", 1) for line in lines)
        assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_resolve_in_their_namespace(overlay):
    objs = render(overlay)
    keys = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): set(s.get("stringData", {}))
        | set(s.get("data", {}))
        for s in find(objs, "Secret")
    }
    for _, obj, pod in pod_specs(objs):
        namespace = obj["metadata"].get("namespace", STANDALONE_NAMESPACE)  # the runtime: its jobs'
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                assert (namespace, source["secretRef"]["name"]) in keys, (
                    f"{obj['metadata']['name']}: {source}"
                )
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in keys[(namespace, ref["name"])], f"{obj['metadata']['name']}: {ref}"


@pytest.mark.parametrize("overlay", ["prod", "profile"])
def test_role_grants_exactly_what_the_launcher_uses(overlay):
    (role,) = find(render(overlay), "Role", "hipo-launcher")
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


@pytest.mark.parametrize(
    ("overlay", "namespace", "account"),
    [("prod", STANDALONE_NAMESPACE, "pipeline-runner"), ("profile", PROFILE_NAMESPACE, "default-editor")],
)
def test_launcher_role_is_bound_to_the_step_account_where_the_steps_run(overlay, namespace, account):
    """Standalone KFP runs steps as pipeline-runner in kubeflow; multi-user KFP as the profile's
    default-editor in the profile namespace (defect: only the first was shipped)."""
    objs = render(overlay)
    (binding,) = find(objs, "RoleBinding", "hipo-launcher")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "hipo-launcher",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    (role,) = find(objs, "Role", "hipo-launcher")
    assert role["metadata"]["namespace"] == namespace
    (training,) = find(objs, "ServiceAccount", LaunchConfig().service_account)
    assert training["metadata"]["namespace"] == namespace
    assert not find(objs, "Namespace", namespace), (
        "KFP owns its namespace: deleting the install must not delete it"
    )
    for name in ("hipo-s3", "hipo-judge"):
        (secret,) = find(objs, "Secret", name)
        assert secret["metadata"]["namespace"] == namespace


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


def test_the_profile_overlay_is_namespaced_only():
    """What a profile namespace needs and nothing cluster-wide (the services and runtime are the
    admin's, installed once with dev or prod)."""
    objs = render("profile")
    assert {o["kind"] for o in objs} == {"Role", "RoleBinding", "ServiceAccount", "Secret"}
    assert {o["metadata"]["namespace"] for o in objs} == {PROFILE_NAMESPACE}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(overlay):
    """Defect: no workload set allowPrivilegeEscalation false, dropped capabilities or a seccomp
    profile, so a namespace enforcing "restricted" refused every pod."""
    for kind, obj, pod in pod_specs(render(overlay)):
        assert pod_security_problems(pod) == [], f"{kind} {obj['metadata']['name']}"
        for container in pod["containers"]:
            if container["name"] != "minio":  # MinIO may write under $HOME (see minio.yaml)
                assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]


def test_the_pod_security_check_finds_what_each_rule_forbids():
    bad = {
        "hostNetwork": True,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {
                    "privileged": True,
                    "runAsUser": 0,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                    "seccompProfile": {"type": "Unconfined"},
                },
            }
        ],
    }
    problems = "\n".join(pod_security_problems(bad))
    for expected in (
        "spec.hostNetwork", "kernel.msgmax is not a safe sysctl", "volume host: type ['hostPath']",
        "container c: privileged", "container c: hostPort", "allowPrivilegeEscalation must be false",
        "runAsNonRoot must be true", "runs as UID 0", "seccompProfile Unconfined", "must drop ALL",
        "adds capabilities ['SYS_ADMIN'] (baseline forbids them)",
    ):  # fmt: skip
        assert expected in problems, expected
    good = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    assert pod_security_problems(good) == []
