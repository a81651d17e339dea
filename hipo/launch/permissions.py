"""The Kubernetes API calls the launcher makes, as RBAC rules: manifests/ grants exactly these."""

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
)
