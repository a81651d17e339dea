"""The promotion gate's semantics (pure: no MLflow)."""

from hipo.config import RegistryConfig
from hipo.registry import evaluate_gate, gate_metrics

LIMITS = RegistryConfig(
    max_accuracy_drop=0.01,
    max_accuracy_drop_vs_baseline=0.02,
    max_token_increase=0.05,
    max_think_rate_increase=0.05,
    max_format_failure_rate=0.05,
)


def metrics(acc=0.8, tokens=100.0, think=0.3, fmt=0.01, bench="arithmetic"):
    return {
        "accuracy": acc,  # macro average: logged, not gated
        f"{bench}/accuracy": acc,
        f"{bench}/tokens": tokens,
        f"{bench}/think_rate": think,
        f"{bench}/format_fail_rate": fmt,
        f"{bench}/d1/accuracy": 0.0,  # finer keys: not gated
        f"{bench}/forced_on/tokens": 999.0,
    }


def test_only_per_benchmark_summaries_are_gated():
    assert set(gate_metrics(metrics())) == {
        "arithmetic/accuracy", "arithmetic/tokens", "arithmetic/think_rate", "arithmetic/format_fail_rate"
    }  # fmt: skip


def test_first_champion_passes_on_its_own_checks():
    decision = evaluate_gate(metrics(), None, LIMITS)
    assert decision.passed and decision.decision == "promoted" and decision.compared_to is None
    assert "first champion" in decision.reasons[-1]
    too_many_failures = evaluate_gate(metrics(fmt=0.2), None, LIMITS)
    assert not too_many_failures.passed
    assert too_many_failures.reasons == ("arithmetic/format_fail_rate 0.2000 exceeds the ceiling 0.0500",)
    assert not evaluate_gate({"accuracy": 0.9}, None, LIMITS).passed  # nothing to gate on


def test_first_champion_is_held_against_the_runs_cold_starts():
    baselines = {"Cold-Start (mix)": metrics(acc=0.80), "Cold-Start (on)": metrics(acc=0.83, tokens=200.0)}
    at_the_edge = evaluate_gate(metrics(acc=0.81, tokens=300.0, think=0.9), None, LIMITS, baselines=baselines)
    assert at_the_edge.passed and at_the_edge.compared_to is None  # 0.02 below on: allowed; tokens not held
    assert at_the_edge.reasons[-1] == (
        "arithmetic/accuracy 0.8100 vs Cold-Start (on) 0.8300: drop +0.0200 within the allowed 0.0200"
    )
    below_its_cold_start = evaluate_gate(metrics(acc=0.77), None, LIMITS, baselines=baselines)
    assert not below_its_cold_start.passed
    assert below_its_cold_start.reasons == (
        "arithmetic/accuracy 0.7700 vs Cold-Start (mix) 0.8000: drop +0.0300 exceeds the allowed 0.0200",
        "arithmetic/accuracy 0.7700 vs Cold-Start (on) 0.8300: drop +0.0600 exceeds the allowed 0.0200",
    )
    strict = LIMITS.model_copy(update={"max_accuracy_drop_vs_baseline": 0.0})
    assert not evaluate_gate(metrics(acc=0.81), None, strict, baselines=baselines).passed
    other_benchmark = evaluate_gate(
        metrics(), None, LIMITS, baselines={"Cold-Start (mix)": metrics(bench="gsm8k")}
    )
    assert other_benchmark.reasons == (
        "gsm8k/accuracy missing from the challenger (Cold-Start (mix) has 0.8)",
    )


def test_margins_are_inclusive():
    champion = metrics(acc=0.80, tokens=100.0, think=0.30)
    at_the_edge = metrics(acc=0.79, tokens=105.0, think=0.35, fmt=0.05)
    decision = evaluate_gate(at_the_edge, champion, LIMITS, "3")
    assert decision.passed and decision.compared_to == "3" and len(decision.reasons) == 4


def test_each_margin_rejects_and_says_why():
    champion = metrics(acc=0.80, tokens=100.0, think=0.30)
    cases = {
        "arithmetic/accuracy 0.7800 vs champion 0.8000: drop +0.0200 exceeds": metrics(acc=0.78),
        "arithmetic/tokens 106.0 vs champion 100.0: above the ceiling 105.0": metrics(tokens=106.0),
        "arithmetic/think_rate 0.3600 vs champion 0.3000: rise +0.0600 exceeds": metrics(think=0.36),
    }
    for reason, challenger in cases.items():
        decision = evaluate_gate(challenger, champion, LIMITS, "1")
        assert not decision.passed and decision.decision == "rejected"
        assert len(decision.reasons) == 1 and decision.reasons[0].startswith(reason), decision.reasons


def test_better_everywhere_passes_and_a_dropped_benchmark_fails():
    champion = {**metrics(), **metrics(bench="gsm8k")}
    better = {**metrics(acc=0.9, tokens=50.0, think=0.1), **metrics(bench="gsm8k", acc=0.9)}
    assert evaluate_gate(better, champion, LIMITS, "1").passed
    missing = evaluate_gate(metrics(acc=0.9), champion, LIMITS, "1")
    assert not missing.passed
    assert sorted(missing.reasons)[0].startswith("gsm8k/accuracy missing from the challenger")
