"""MLflow: log a run, register the policy, gate and move the ``champion`` alias, promote, roll back.

mlflow is imported lazily inside the functions, so importing this package is cheap.
"""

from hipo.registry.champion import (
    ModelSummary,
    VersionSummary,
    describe,
    gate_version,
    promote,
    promote_challenger,
    rollback,
)
from hipo.registry.client import CHALLENGER, CHAMPION, RegistryError
from hipo.registry.gate import GATE_METRICS, GateDecision, evaluate_gate, gate_metrics
from hipo.registry.publish import Registration, attach_to_version, register

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GATE_METRICS",
    "GateDecision",
    "ModelSummary",
    "Registration",
    "RegistryError",
    "VersionSummary",
    "attach_to_version",
    "describe",
    "evaluate_gate",
    "gate_metrics",
    "gate_version",
    "promote",
    "promote_challenger",
    "register",
    "rollback",
]
