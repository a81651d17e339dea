"""Why did the launcher get SIGTERM: its user cancelled the pipeline run, or its pod is going away?

Kubernetes sends SIGTERM both when KFP terminates a run (KFP sets the run's Argo Workflow
``spec.activeDeadlineSeconds`` to 0, or deletes the workflow with the run; Argo then stops its pods)
and when a node is drained or the pod is evicted or preempted. Only the first should delete a training
job that may have run for days; after the second, KFP retries the step and the retry reattaches.

The step pod finds its workflow through its own pod (``KFP_POD_NAME``, set by KFP on every step pod)
and the Argo label on it. Outside a KFP pod (a terminal, kfp.local) nothing would retry the step, so
SIGTERM there is a cancel.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

POD_NAME_ENV = "KFP_POD_NAME"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
WORKFLOW = {"group": "argoproj.io", "version": "v1alpha1", "plural": "workflows"}
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CHECK_TIMEOUT_S = 5.0  # the kubelet kills the pod 30 s after SIGTERM by default: decide well before


class Stop(Enum):
    CANCELLED = "the run was terminated by its user"
    EVICTED = "the step's pod is being stopped (eviction, drain, preemption) while its run goes on"
    UNKNOWN = "the run's state could not be read"


def pod_namespace(path: Path | None = None) -> str | None:
    """The namespace of the pod this runs in (its service account's), or None outside a pod."""
    try:
        return (path or SERVICE_ACCOUNT_NAMESPACE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def why_stopped(api: Any, namespace: str) -> tuple[Stop, str]:
    """Classify a SIGTERM for the step pod ``$KFP_POD_NAME`` in ``namespace``; the reason as text."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    pod_name = os.environ.get(POD_NAME_ENV)
    if not pod_name:
        return Stop.CANCELLED, f"not in a KFP step pod (no {POD_NAME_ENV})"
    timeout = {"_request_timeout": (CHECK_TIMEOUT_S, CHECK_TIMEOUT_S)}
    try:
        pod = client.CoreV1Api(api).read_namespaced_pod(pod_name, namespace, **timeout)
        workflow_name = (pod.metadata.labels or {}).get(WORKFLOW_LABEL)
        if not workflow_name:
            return Stop.UNKNOWN, f"pod {pod_name} has no {WORKFLOW_LABEL} label"
        try:
            workflow = client.CustomObjectsApi(api).get_namespaced_custom_object(
                **WORKFLOW, namespace=namespace, name=workflow_name, **timeout
            )
        except ApiException as error:
            if error.status == 404:
                return Stop.CANCELLED, f"workflow {workflow_name} was deleted with its run"
            raise
    except Exception as error:  # any failure to read the state: keep the job rather than lose it
        return Stop.UNKNOWN, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    spec = workflow.get("spec") or {}
    if spec.get("activeDeadlineSeconds") == 0 or spec.get("shutdown"):
        return Stop.CANCELLED, f"workflow {workflow_name} was terminated"
    return Stop.EVICTED, f"workflow {workflow_name} is still running"
