"""The champion alias: the promotion gate applied to a version, manual promotion, rollback, summaries.

Audit trail, all in the registry: every promotion tags the new champion with ``champion.previous``
(the version it replaced; rollback follows it), ``champion.reason`` and ``champion.promoted_at``; a
rollback tags the demoted version ``champion.rolled_back``; the registered-model tag
``champion.history`` lists the champions in order. Gate outcomes are version tags ``gate.*``; the
run's own baselines, which a first champion is held against, are the version tag ``gate.baselines``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hipo.config import RegistryConfig
from hipo.registry.client import (
    CHAMPION,
    RUN_TAG,
    RegistryError,
    alias_version,
    connect,
    get_model,
    get_version,
    mlflow_errors,
    tagged_metrics,
    version_metrics,
)
from hipo.registry.gate import GateDecision, evaluate_gate

if TYPE_CHECKING:
    from mlflow import MlflowClient

PREVIOUS, REASON, PROMOTED_AT, ROLLED_BACK = (
    "champion.previous",
    "champion.reason",
    "champion.promoted_at",
    "champion.rolled_back",
)
HISTORY = "champion.history"  # registered-model tag: champion versions in order, comma-separated
GATE_DECISION, GATE_REASONS, GATE_COMPARED_TO = "gate.decision", "gate.reasons", "gate.compared_to"
GATE_BASELINES = "gate.baselines"  # JSON {display name: gated metrics} of the run's cold starts
PASSED = "passed"  # the gate passed and the promotion is left to promote_challenger
_HISTORY_LENGTH = 100
TAG_VALUE_LIMIT = 4000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _set_champion(client: MlflowClient, name: str, version: str, reason: str) -> str | None:
    """Point ``champion`` at ``version``, record the audit tags; returns the replaced champion."""
    previous = alias_version(client, name, CHAMPION)
    previous_version = None if previous is None else str(previous.version)  # SQLite stores give ints
    version = str(version)
    if previous_version == version:
        return previous_version
    client.set_registered_model_alias(name, CHAMPION, version)
    tags = {PREVIOUS: previous_version or "none", REASON: reason[:TAG_VALUE_LIMIT], PROMOTED_AT: _now()}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    _append_history(client, name, version)
    return previous_version


def _append_history(client: MlflowClient, name: str, version: str) -> None:
    history = client.get_registered_model(name).tags.get(HISTORY, "")
    entries = [*filter(None, history.split(",")), version][-_HISTORY_LENGTH:]
    client.set_registered_model_tag(name, HISTORY, ",".join(entries))


def apply_gate(
    client: MlflowClient, name: str, version: str, limits: RegistryConfig, promote: bool = True
) -> GateDecision:
    """Gate ``version`` against the champion, record ``gate.*`` tags and, when it passes and
    ``promote``, make it the champion. Unpromoted, a pass is recorded as "passed" for
    :func:`promote_challenger` (the pipeline's separate promotion step) to finish.

    Idempotent: a version that already carries a decision keeps it (the tags are written last).
    """
    candidate = client.get_model_version(name, version)
    if GATE_DECISION in candidate.tags:
        compared = candidate.tags.get(GATE_COMPARED_TO, "none")
        return GateDecision(
            candidate.tags[GATE_DECISION] in ("promoted", PASSED),
            tuple(candidate.tags.get(GATE_REASONS, "").split("\n")),
            None if compared == "none" else compared,
        )
    champion = alias_version(client, name, CHAMPION)
    if champion is not None and str(champion.version) == str(version):
        decision = GateDecision(True, ("already the champion",), version)
    else:
        decision = evaluate_gate(
            version_metrics(client, candidate),
            None if champion is None else version_metrics(client, champion),
            limits,
            None if champion is None else str(champion.version),
            baselines=json.loads(candidate.tags.get(GATE_BASELINES, "{}")),
        )
        if decision.passed and promote:
            _set_champion(client, name, version, _gate_reason(decision.reasons))
    tags = {
        GATE_REASONS: "\n".join(decision.reasons)[:TAG_VALUE_LIMIT],
        GATE_COMPARED_TO: decision.compared_to or "none",
        # last: its presence means the gate ran to the end
        GATE_DECISION: PASSED if decision.passed and not promote else decision.decision,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return decision


def gate_version(
    name: str, version: str | int, limits: RegistryConfig, *, tracking_uri: str | None = None
) -> GateDecision:
    """The promotion gate's decision for ``version`` (the recorded one, else computed and recorded
    now); never moves the champion: that is :func:`promote_challenger`."""
    client = connect(tracking_uri)
    with mlflow_errors(f"gate {name} v{version}"):
        return apply_gate(client, name, get_version(client, name, version).version, limits, promote=False)


def _gate_reason(reasons: tuple[str, ...] | list[str]) -> str:
    return "gate passed: " + "; ".join(reasons)


def promote_challenger(name: str, version: str | int, *, tracking_uri: str | None = None) -> str | None:
    """Make a version whose gate decision is "passed" the champion (idempotent); returns the version
    it replaced. Refuses a version the gate rejected or never saw: use :func:`promote` to override."""
    client = connect(tracking_uri)
    with mlflow_errors(f"promote {name} v{version} after its gate"):
        candidate = get_version(client, name, version)
        decision = candidate.tags.get(GATE_DECISION)
        if decision not in (PASSED, "promoted"):
            raise RegistryError(
                f"{name} v{candidate.version}: gate decision is {decision or 'missing'}, not passed; "
                f"promote it by hand with `hipo promote {name} {candidate.version} --reason ...`"
            )
        reasons = candidate.tags.get(GATE_REASONS, "").split("\n")
        previous = _set_champion(client, name, candidate.version, _gate_reason(reasons))
        client.set_model_version_tag(name, candidate.version, GATE_DECISION, "promoted")
        return previous


def promote(
    name: str, version: str | int, reason: str = "manual", *, tracking_uri: str | None = None
) -> str | None:
    """Make ``version`` the champion whatever the gate said; returns the version it replaced, if any."""
    client = connect(tracking_uri)
    with mlflow_errors(f"promote {name} v{version}"):
        target = get_version(client, name, version).version
        return _set_champion(client, name, target, reason)


def rollback(name: str, reason: str = "manual rollback", *, tracking_uri: str | None = None) -> str:
    """Move ``champion`` back to the version the current champion replaced; returns that version."""
    client = connect(tracking_uri)
    with mlflow_errors(f"roll back {name}"):
        get_model(client, name)
        current = alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"model {name!r} has no champion to roll back")
        previous = current.tags.get(PREVIOUS, "none")
        if previous == "none":
            raise RegistryError(
                f"champion v{current.version} of {name!r} has no previous champion to roll back to; "
                f"pick one with `hipo promote {name} VERSION`"
            )
        get_version(client, name, previous)  # still there (not deleted)
        client.set_registered_model_alias(name, CHAMPION, previous)
        client.set_model_version_tag(name, current.version, ROLLED_BACK, f"{_now()} to v{previous}: {reason}")
        _append_history(client, name, previous)
        return previous


@dataclass(frozen=True)
class VersionSummary:
    version: str
    aliases: tuple[str, ...]
    created_ms: int
    metrics: dict[str, float]  # the gated metrics, from the version's tags
    tags: dict[str, str]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    aliases: dict[str, str]  # alias -> version
    history: tuple[str, ...]  # champion versions in order
    versions: tuple[VersionSummary, ...]  # newest first

    def to_text(self) -> str:
        """A header line (aliases, champion history) and a table of versions with gate and metrics."""
        keys = sorted({key for v in self.versions for key in v.metrics})
        aliases = ", ".join(f"{alias} v{version}" for alias, version in sorted(self.aliases.items()))
        history = " → ".join(f"v{version}" for version in self.history) or "none"
        rows = [["version", "aliases", "gate", *keys, "pipeline run"]]
        for v in self.versions:
            metrics = [f"{v.metrics[key]:.4g}" if key in v.metrics else "-" for key in keys]
            gate = v.tags.get(GATE_DECISION, "-")
            rows.append([v.version, ",".join(v.aliases) or "-", gate, *metrics, v.tags.get(RUN_TAG, "-")])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        return "\n".join([f"{self.name}: {aliases or 'no aliases'}; champion history: {history}", *table])


def describe(name: str, *, tracking_uri: str | None = None) -> ModelSummary:
    """Versions (newest first) with aliases, gate outcome and key metrics; champion history."""
    client = connect(tracking_uri)
    with mlflow_errors(f"describe {name}"):
        model = get_model(client, name)
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
        versions = []
        for mv in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version)):
            metrics = tagged_metrics(mv.tags)
            on_it = tuple(sorted(a for a, v in aliases.items() if v == str(mv.version)))
            versions.append(
                VersionSummary(str(mv.version), on_it, mv.creation_timestamp, metrics, dict(mv.tags))
            )
        history = tuple(filter(None, model.tags.get(HISTORY, "").split(",")))
        return ModelSummary(name, aliases, history, tuple(versions))
