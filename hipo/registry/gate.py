"""The promotion gate: may a challenger's evaluation replace the champion's? Pure: metrics in, decision out.

Gated metrics are the per-benchmark summaries ``<benchmark>/<name>`` (exactly one slash, as
hipo.evaluate's ``flat_metrics`` writes them for the auto pass) whose name is one of GATE_METRICS;
macro averages (``accuracy``) and finer keys (``arithmetic/d3/accuracy``, ``arithmetic/forced_on/...``)
are logged but not gated. Every benchmark the champion was gated on must be present in the challenger.

With no champion yet, the challenger is held against the run's own baselines where the run scored them
(its cold start, and Cold-Start (on) where the run trained it): accuracy may fall below each by at most
``max_accuracy_drop_vs_baseline``. Tokens and thinking rate are not held against a baseline: trading
them for accuracy, or cutting them below a think-always model, is what RL is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hipo.config import RegistryConfig

ACCURACY = "accuracy"
TOKENS = "tokens"
THINK_RATE = "think_rate"
FORMAT_FAILURES = "format_fail_rate"
GATE_METRICS = (ACCURACY, TOKENS, THINK_RATE, FORMAT_FAILURES)
_EPS = 1e-9  # so that a drop of exactly the allowed margin passes despite float rounding


@dataclass(frozen=True)
class GateDecision:
    """The outcome: passed or not, one line per check that decided it, and the champion compared to."""

    passed: bool
    reasons: tuple[str, ...]
    compared_to: str | None = None  # champion version; None when there was no champion

    @property
    def decision(self) -> str:
        return "promoted" if self.passed else "rejected"


def gate_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The gated subset of ``metrics``: ``<benchmark>/<name>`` with ``name`` in GATE_METRICS."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if key.count("/") == 1 and key.split("/")[1] in GATE_METRICS
    }


def _accuracy_check(key: str, new: float, old: float, against: str, allowed: float) -> tuple[bool, str]:
    drop = old - new
    ok = drop <= allowed + _EPS
    verdict = "within" if ok else "exceeds"
    return ok, f"{key} {new:.4f} vs {against} {old:.4f}: drop {drop:+.4f} {verdict} the allowed {allowed:.4f}"


def _compare(key: str, new: float, old: float, limits: RegistryConfig) -> tuple[bool, str]:
    """(within the margin, a line saying why) for one metric the champion also has."""
    name = key.split("/")[1]
    if name == ACCURACY:
        return _accuracy_check(key, new, old, "champion", limits.max_accuracy_drop)
    if name == TOKENS:
        ceiling = old * (1.0 + limits.max_token_increase)
        ok = new <= ceiling + _EPS
        return ok, (
            f"{key} {new:.1f} vs champion {old:.1f}: {'at most' if ok else 'above'} the ceiling "
            f"{ceiling:.1f} (+{limits.max_token_increase:.0%})"
        )
    rise = new - old
    ok = rise <= limits.max_think_rate_increase + _EPS
    return ok, (
        f"{key} {new:.4f} vs champion {old:.4f}: rise {rise:+.4f} {'within' if ok else 'exceeds'} "
        f"the allowed {limits.max_think_rate_increase:.4f}"
    )


def _baseline_checks(
    new: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]], limits: RegistryConfig
) -> list[tuple[bool, str]]:
    """The first champion's accuracy against each of the run's baselines (``{name: metrics}``)."""
    checks = []
    for name, metrics in sorted(baselines.items()):
        for key, value in sorted(gate_metrics(metrics).items()):
            if not key.endswith(f"/{ACCURACY}"):
                continue
            if key not in new:
                checks.append((False, f"{key} missing from the challenger ({name} has {value:.4g})"))
            else:
                checks.append(
                    _accuracy_check(key, new[key], value, name, limits.max_accuracy_drop_vs_baseline)
                )
    return checks


def evaluate_gate(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    limits: RegistryConfig,
    champion_version: str | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
) -> GateDecision:
    """Decide promotion. ``champion`` None means there is none yet: the challenger's accuracy is held
    against ``baselines`` (``{display name: metrics}``, the run's own cold starts) when given, and it
    must pass its own checks (an accuracy metric, and format failures under the ceiling)."""
    new = gate_metrics(challenger)
    checks: list[tuple[bool, str]] = []
    if not any(key.endswith(f"/{ACCURACY}") for key in new):
        checks.append((False, f"challenger has no <benchmark>/{ACCURACY} metric to gate on"))
    for key, rate in sorted(new.items()):
        if key.endswith(f"/{FORMAT_FAILURES}"):
            ok = rate <= limits.max_format_failure_rate + _EPS
            checks.append(
                (ok, f"{key} {rate:.4f} {'within' if ok else 'exceeds'} the ceiling "
                     f"{limits.max_format_failure_rate:.4f}")
            )  # fmt: skip
    if champion is None and baselines:
        checks += _baseline_checks(new, baselines, limits)
    elif champion is None:
        checks.append((True, "first champion: no champion or baseline to compare with"))
    else:
        for key, value in sorted(gate_metrics(champion).items()):
            if key.endswith(f"/{FORMAT_FAILURES}"):
                continue  # an absolute ceiling on the challenger, not a comparison
            if key not in new:
                checks.append((False, f"{key} missing from the challenger (champion has {value:.4g})"))
            else:
                checks.append(_compare(key, new[key], value, limits))
    passed = all(ok for ok, _ in checks)
    reasons = tuple(line for ok, line in checks if ok == passed)
    return GateDecision(passed, reasons, champion_version)
