"""Crash safety: a fault mid-benchmark keeps the finished batches; the rerun does only what is missing."""

from __future__ import annotations

import json

import pytest
from fakes.engines import FaultyEngine

from hipo.config import ConfigError, build_config
from hipo.engines import ScriptedEngine
from hipo.evaluate import evaluate_model, load_benchmarks, load_result

CONFIG = build_config({"eval": {"max_problems": 20, "batch_size": 4}})


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_crash_keeps_batches_and_rerun_completes_without_redoing(tmp_path, capsys):
    benchmarks = load_benchmarks(CONFIG.eval, CONFIG.seed)
    crashing = FaultyEngine(ScriptedEngine(seed=0), fail_after=7)  # 5 auto batches, then 2 of 5 "on"
    with pytest.raises(RuntimeError, match="injected fault"):
        evaluate_model(crashing, benchmarks, CONFIG, tmp_path)
    samples = tmp_path / "samples.jsonl"
    kept = _lines(samples)
    assert len(kept) == 7 * 4
    assert [json.loads(line)["pass"] for line in kept] == ["auto"] * 20 + ["on"] * 8
    assert "ETA" in capsys.readouterr().err  # a progress line per batch

    with samples.open("a", encoding="utf-8") as f:
        f.write('{"benchmark": "arithmetic", "pass": "on", "id": "torn')  # a write cut short by the crash
    rerun = FaultyEngine(ScriptedEngine(seed=1))
    result = evaluate_model(rerun, benchmarks, CONFIG, tmp_path)
    assert rerun.calls == 3 + 5  # the rest of "on", then all of "off"
    done_on = {json.loads(line)["prompt"] for line in kept[20:]}
    assert not any(mode == "auto" or (mode == "on" and p in done_on) for p, mode in rerun.asked)
    lines = _lines(samples)
    assert lines[:28] == kept and len(lines) == 60
    assert len(result.samples) == 60 and not result.samples.duplicated(["pass", "id"]).any()
    assert result.metrics("arithmetic", "off")["n"] == 20

    again = FaultyEngine(ScriptedEngine(seed=2), fail_after=0)  # nothing left: no call at all
    assert evaluate_model(again, benchmarks, CONFIG, tmp_path).samples.equals(result.samples)
    assert load_result(tmp_path, "scripted").samples.equals(result.samples)


def test_rerun_with_other_sampling_is_refused(tmp_path):
    benchmarks = load_benchmarks(CONFIG.eval, CONFIG.seed)
    evaluate_model(ScriptedEngine(), benchmarks, CONFIG, tmp_path, forced_passes=False)
    other = build_config({"eval": {"max_problems": 20}, "eval_sampling": {"temperature": 0.0}})
    with pytest.raises(ConfigError, match="fresh output directory"):
        evaluate_model(ScriptedEngine(), benchmarks, other, tmp_path)
