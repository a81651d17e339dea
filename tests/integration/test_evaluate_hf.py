"""Evaluation through HFEngine on the tiny real models: exact verdicts, and crash safety around it."""

from __future__ import annotations

import pytest
from conftest import TINY_FIXED_RESPONSES
from fakes.engines import FaultyEngine

from hipo.config import build_config
from hipo.engines.hf import HFEngine
from hipo.evaluate import Benchmark, evaluate_model
from hipo.tasks.arithmetic import ArithmeticTask, make_problem

GREEDY = {"eval_sampling": {"greedy": True, "max_new_tokens": 32}}


def test_fixed_response_model_scores_accuracy_one(fixed_response_model_dir, tmp_path):
    engine = HFEngine(fixed_response_model_dir, seed=0)
    bench = Benchmark("fixed", ArithmeticTask(), [make_problem((2, 3), 1)])
    config = build_config(GREEDY)
    result = evaluate_model(engine, [bench], config, tmp_path, forced_passes=False)
    (row,) = result.samples.itertuples()
    assert row.text.strip() == TINY_FIXED_RESPONSES["What is 2 + 3?"]
    m = result.metrics("fixed")
    assert (m["accuracy"], m["think_rate"], m["format_fail_rate"], m["accuracy_off"]) == (1.0, 0.0, 0.0, 1.0)
    (direct,) = engine.generate([row.prompt], 1, config.eval_sampling)[0]
    assert m["tokens"] == row.tokens == len(direct.token_ids) > 0  # the engine's tokens, not characters


def test_crash_around_hf_engine_keeps_batches(tiny_model_dir, tmp_path):
    config = build_config({"eval": {"batch_size": 2}, "eval_sampling": {"max_new_tokens": 6}})
    problems = ArithmeticTask().problems("eval", 6, seed=0)
    bench = Benchmark("arithmetic", ArithmeticTask(), problems)
    engine = HFEngine(tiny_model_dir, batch_size=2, seed=0)
    with pytest.raises(RuntimeError, match="injected fault"):
        evaluate_model(FaultyEngine(engine, fail_after=2), [bench], config, tmp_path, forced_passes=False)
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 4
    rerun = FaultyEngine(engine)
    result = evaluate_model(rerun, [bench], config, tmp_path, forced_passes=False)
    assert rerun.calls == 1 and len(result.samples) == 6
    assert set(result.samples["id"]) == {p.id for p in problems}
    assert (result.samples["tokens"] <= 6).all()
