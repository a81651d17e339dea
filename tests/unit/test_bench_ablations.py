"""The ablation report's tables (bench/ablations.py): per-difficulty accuracy beside the thinking rate."""

from typing import Any

from bench.ablations import aggregate, markdown


def _seed(accuracy_d3: float, with_accuracy: bool = True) -> dict[str, Any]:
    rows = {"Cold-Start (mix)": {"accuracy": 0.99, "tokens": 32.0, "think_rate": 0.4}}
    rows["Cold-Start (mix)"] |= {"accuracy_rel": 0.0, "tokens_rel": 0.0, "think_rate_rel": 0.0}
    seed = {"rows": rows, "think_rate_by_difficulty": {"Cold-Start (mix)": {"d1": 0.0, "d3": 0.2}}}
    if with_accuracy:
        seed["accuracy_by_difficulty"] = {"Cold-Start (mix)": {"d1": 1.0, "d3": accuracy_d3}}
    return seed


def _report(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {"command": "c", "date": "d", "machine": "m", "seeds": list(range(len(per_seed)))}
    return {"meta": meta | {"sets": [], "wall_s": [1.0] * len(per_seed)}, "aggregate": aggregate(per_seed)}


def test_accuracy_per_difficulty_is_aggregated_and_tabled() -> None:
    report = _report([_seed(0.94), _seed(0.98)])
    d3 = report["aggregate"]["accuracy_by_difficulty"]["Cold-Start (mix)"]["d3"]
    assert (d3["min"], d3["max"]) == (0.94, 0.98)
    text = markdown(report)
    assert "Accuracy per difficulty:" in text
    assert "| Cold-Start (mix) | 1.000 [1.000, 1.000] | 0.960 [0.940, 0.980] |" in text


def test_results_recorded_before_accuracy_per_difficulty_still_render() -> None:
    report = _report([_seed(0.94, with_accuracy=False)])
    assert "accuracy_by_difficulty" not in report["aggregate"]
    text = markdown(report)
    assert "Accuracy per difficulty" not in text
    assert "| Cold-Start (mix) | – | 0.990 | 32.0 | 0.400 |" in text
