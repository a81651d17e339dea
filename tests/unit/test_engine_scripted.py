"""ScriptedEngine: the arithmetic scripted teacher behind the engine interface."""

from collections import Counter

import pytest

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines import Engine, EngineError, ScriptedEngine
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.teacher import ScriptedTeacher

SAMPLING = SamplingConfig()


@pytest.fixture(scope="module")
def problems():
    return ArithmeticTask().problems("train", 200, seed=0)


def _texts(result):
    return [[c.text for c in row] for row in result]


def test_shapes_modes_and_format(problems):
    engine = ScriptedEngine(seed=0)
    assert isinstance(engine, Engine) and engine.name == "scripted"
    prompts = [p.prompt for p in problems[:20]]
    for mode in ("on", "off"):
        result = engine.generate(prompts, 4, SAMPLING, forced_mode=mode)
        assert [len(row) for row in result] == [4] * 20
        for row in result:
            for c in row:
                parsed = template.parse(c.text)
                assert parsed.format_ok and parsed.mode == mode and c.finish_reason == "stop"
                assert c.token_ids is None and c.logprobs is None


def test_auto_mixes_modes_and_seed_reproduces(problems):
    prompts = [p.prompt for p in problems]
    first = ScriptedEngine(seed=3).generate(prompts, 8, SAMPLING)
    assert _texts(ScriptedEngine(seed=3).generate(prompts, 8, SAMPLING)) == _texts(first)
    assert _texts(ScriptedEngine(seed=4).generate(prompts, 8, SAMPLING)) != _texts(first)
    modes = Counter(template.parse(c.text).mode for row in first for c in row)
    assert 0.4 < modes["on"] / (modes["on"] + modes["off"]) < 0.6


def test_error_rates_follow_the_teacher(problems):
    task = ArithmeticTask()
    hard = [p for p in problems if p.difficulty == 5]
    engine = ScriptedEngine(ScriptedTeacher({5: (0.0, 1.0)}), seed=0)
    on = engine.generate([p.prompt for p in hard], 4, SAMPLING, forced_mode="on")
    off = engine.generate([p.prompt for p in hard], 4, SAMPLING, forced_mode="off")
    for p, row_on, row_off in zip(hard, on, off, strict=True):
        assert all(task.verify(p, task.extract(c.text)) for c in row_on)
        assert not any(task.verify(p, task.extract(c.text)) for c in row_off)


def test_max_new_tokens_truncates(problems):
    prompt = next(p.prompt for p in problems if p.difficulty == 5)
    engine = ScriptedEngine(seed=0)
    full = engine.generate([prompt], 1, SAMPLING, forced_mode="on")[0][0]
    assert full.finish_reason == "stop"
    exact = engine.generate([prompt], 1, SamplingConfig(max_new_tokens=full.num_tokens), forced_mode="on")
    assert exact[0][0].finish_reason == "stop"
    (cut,) = engine.generate([prompt], 1, SamplingConfig(max_new_tokens=10), forced_mode="on")[0]
    assert cut.finish_reason == "length" and cut.num_tokens == 10 and full.text.startswith(cut.text)


def test_bad_input_is_a_clear_error():
    engine = ScriptedEngine()
    with pytest.raises(EngineError, match="only arithmetic-ladder prompts"):
        engine.generate(["Prove Fermat's last theorem."], 1, SAMPLING)
    with pytest.raises(EngineError, match="no difficulty level"):
        engine.generate(["What is 1 + 1000?"], 1, SAMPLING)
    with pytest.raises(EngineError, match="forced_mode"):
        engine.generate(["What is 1 + 1?"], 1, SAMPLING, forced_mode="maybe")
