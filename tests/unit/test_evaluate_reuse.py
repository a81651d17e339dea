"""Samples scored once are reused by content (model files, problems, sampling, engine), never by name."""

from __future__ import annotations

import json

import pytest
from fakes.engines import FaultyEngine

from hipo.config import ConfigError, build_config
from hipo.engines import ScriptedEngine
from hipo.evaluate import compare, evaluate_model, load_benchmarks
from hipo.evaluate.compare import evaluate_models
from hipo.evaluate.reuse import model_digest, problems_digest

CONFIG = build_config({"eval": {"max_problems": 12, "batch_size": 4, "forced_mode_passes": False}})
BENCHMARKS = load_benchmarks(CONFIG.eval, CONFIG.seed)


@pytest.fixture
def earlier(tmp_path):
    """An evaluation folder in which the model with digest "m1" was scored."""
    folder = tmp_path / "models" / "first"
    evaluate_model(ScriptedEngine(seed=0), BENCHMARKS, CONFIG, folder, model_digest="m1")
    return tmp_path


def test_the_same_model_is_copied_and_not_scored_again(earlier, tmp_path, capsys):
    out = tmp_path / "second" / "models" / "other-name"
    never = FaultyEngine(ScriptedEngine(seed=7), fail_after=0)  # any generate call raises
    result = evaluate_model(never, BENCHMARKS, CONFIG, out, model_digest="m1", earlier=earlier)
    first = (earlier / "models" / "first" / "samples.jsonl").read_text(encoding="utf-8")
    assert (out / "samples.jsonl").read_text(encoding="utf-8") == first and len(result.samples) == 12
    record = json.loads((out / "eval_run.json").read_text())
    assert record["copied_from"] == str(earlier / "models" / "first") and record["model"] == "m1"
    assert "12 samples of" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("digest", "config", "benchmarks"),
    [
        ("m2", CONFIG, BENCHMARKS),  # other model files
        ("m1", build_config({**CONFIG.to_dict(), "eval_sampling": {"temperature": 0.3}}), BENCHMARKS),
        ("m1", CONFIG, load_benchmarks(CONFIG.eval, CONFIG.seed + 1)),  # other problems, same ids
    ],
    ids=["model", "sampling", "problems"],
)
def test_anything_else_is_scored_afresh(earlier, tmp_path, digest, config, benchmarks):
    out = tmp_path / "second"
    with pytest.raises(RuntimeError, match="injected fault"):  # it went to the engine
        engine = FaultyEngine(ScriptedEngine(), fail_after=0)
        evaluate_model(engine, benchmarks, config, out, model_digest=digest, earlier=earlier)
    assert not (out / "samples.jsonl").read_text(encoding="utf-8")


def test_another_model_is_not_added_to_a_folder(earlier):
    folder = earlier / "models" / "first"
    with pytest.raises(ConfigError, match="samples of another model"):
        evaluate_model(ScriptedEngine(), BENCHMARKS, CONFIG, folder, model_digest="m2")


def test_model_digest_follows_the_bytes_not_the_place(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"\x00" * 3_000_000)
    (a / "checkpoints").mkdir()  # sub-folders are not part of a model's files
    assert model_digest(str(a)) == model_digest(str(b)) and len(model_digest(str(a))) == 64
    (b / "model.safetensors").write_bytes(b"\x00" * 2_999_999 + b"\x01")
    assert model_digest(str(a)) != model_digest(str(b))
    assert model_digest("scripted") == "scripted"


def test_problems_digest_sees_each_problem():
    assert problems_digest(BENCHMARKS) == problems_digest(load_benchmarks(CONFIG.eval, CONFIG.seed))
    assert problems_digest(BENCHMARKS) != problems_digest(load_benchmarks(CONFIG.eval, CONFIG.seed + 1))
    assert problems_digest(BENCHMARKS) != problems_digest([])


def test_a_model_whose_samples_are_all_copied_is_never_loaded(tmp_path, monkeypatch):
    first, _ = evaluate_models(CONFIG, {"teacher": "scripted"}, tmp_path / "a")

    def no_loading(model, config):
        raise AssertionError(f"{model} was loaded")

    monkeypatch.setattr(compare, "engine_for", no_loading)
    again, _ = evaluate_models(CONFIG, {"same": "scripted"}, tmp_path / "b", earlier=tmp_path / "a")
    assert again["same"].samples.equals(first["teacher"].samples)
    other = build_config({**CONFIG.to_dict(), "seed": CONFIG.seed + 1})  # other problems: it must load
    with pytest.raises(AssertionError, match="scripted was loaded"):
        evaluate_models(other, {"same": "scripted"}, tmp_path / "c", earlier=tmp_path / "a")
