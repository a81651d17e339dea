"""The Kubernetes API calls the launcher makes, as RBAC rules: manifests/ grants exactly these.

tests/integration/test_launch_kube.py drives every launcher path against a fake API server that records
each call's verb and resource, and fails on a call outside these rules or a rule verb never used.
Pods: ``list`` (by the job's label; the list carries each pod's full status) and ``get`` (the step's own
pod, whose Argo label names the pipeline run's workflow); workflows: ``get``, to tell a user's cancel
from an eviction (``hipo.launch.run_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

JOB_VERBS = ("create", "delete", "get", "list", "watch")


@dataclass(frozen=True)
class Rule:
    api_group: str
    resource: str
    verbs: tuple[str, ...]


LAUNCHER_RULES: tuple[Rule, ...] = (
    Rule("trainer.kubeflow.org", "trainjobs", JOB_VERBS),
    Rule("kubeflow.org", "pytorchjobs", JOB_VERBS),
    Rule("", "pods", ("get", "list")),
    Rule("", "pods/log", ("get",)),
    Rule("", "events", ("list",)),
    Rule("argoproj.io", "workflows", ("get",)),
)
