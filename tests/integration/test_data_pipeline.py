"""The hybrid data pipeline end to end on the arithmetic task with the scripted teacher."""

import json

import pandas as pd
import pytest

from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.data.sampling import SAMPLES_FILE
from hipo.engines.scripted import ScriptedEngine
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter

CONFIG = build_config({"task": {"train_size": 600, "eval_size": 150}})


class CrashAfter:
    """Fault injection around a real engine: raises after `batches` generate calls, counts prompts."""

    def __init__(self, engine, batches=None):
        self.engine, self.batches, self.calls, self.prompts = engine, batches, 0, 0
        self.name = engine.name

    def generate(self, prompts, n, sampling, forced_mode="auto"):
        if self.batches is not None and self.calls >= self.batches:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.prompts += len(prompts)
        return self.engine.generate(prompts, n, sampling, forced_mode)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    stats = generate_dataset(
        CONFIG, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), out
    )
    return out, stats


def test_outputs_and_stats(dataset):
    out, stats = dataset
    for name in ("mix", "on"):
        for split in ("train", "eval"):
            assert (out / name / f"{split}.parquet").is_file()
    saved = json.loads((out / "stats.json").read_text())
    assert saved["queries"] == stats["queries"] > 0
    assert set(saved["pass_rate_histogram"]) == {"on", "off"}
    assert saved["teacher"] == "scripted" and saved["rationale_model"] == "template"


def test_intended_signal_easy_off_hard_on(dataset):
    _, stats = dataset
    levels = stats["splits"]["train"]["level"]
    share_on = {int(k): v.get("on", 0) / sum(v.values()) for k, v in levels.items()}
    assert share_on[1] < 0.2 and share_on[2] < 0.2
    assert share_on[4] > 0.8 and share_on[5] > 0.8
    buckets = stats["splits"]["train"]["difficulty"]
    assert buckets["easy"].get("off", 0) > buckets["easy"].get("on", 0)
    assert buckets["hard"].get("on", 0) > buckets["hard"].get("off", 0)


def test_rows_are_consistent(dataset):
    out, _ = dataset
    train, eval_ = (pd.read_parquet(out / "mix" / f"{s}.parquet") for s in ("train", "eval"))
    assert not set(train["prompt"]) & set(eval_["prompt"])
    assert train["prompt"].is_unique and train["id"].is_unique
    assert (train["answer"] == train["reference_answer"]).all()
    assert train.apply(lambda r: f"<think_{r['mode']}>" in r["response"], axis=1).all()
    assert not train["response"].str.contains("Placeholder").any()  # the judge was rewritten
    on_only = pd.read_parquet(out / "on" / "train.parquet")
    assert (on_only["mode"] == "on").all() and len(on_only) >= len(train) * 0.9
    assert (on_only["n_tokens"].mean()) > train["n_tokens"].mean()


def test_crash_then_resume_redoes_nothing(tmp_path):
    task, config = get_task("arithmetic"), build_config({"task": {"train_size": 200, "eval_size": 50}})
    crashing = CrashAfter(ScriptedEngine(seed=1), batches=3)  # 2 modes per batch: dies in batch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_dataset(config, task, crashing, TemplateRationaleWriter(), tmp_path, batch_size=64)
    finished = len((tmp_path / SAMPLES_FILE).read_text().splitlines())
    assert finished == 64
    with (tmp_path / SAMPLES_FILE).open("a") as f:
        f.write('{"id": "torn')  # a write cut short by the crash
    resumed = CrashAfter(ScriptedEngine(seed=1))
    stats = generate_dataset(config, task, resumed, TemplateRationaleWriter(), tmp_path, batch_size=64)
    assert resumed.prompts == 2 * (stats["queries"] - finished)  # each pending query once per mode
    again = CrashAfter(ScriptedEngine(seed=1))
    generate_dataset(config, task, again, TemplateRationaleWriter(), tmp_path, batch_size=64)
    assert again.prompts == 0
    ids = [json.loads(line)["id"] for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == stats["queries"]


def test_quality_gate_passes_the_mix_and_flags_the_on_only_share(dataset):
    from hipo.quality import validate_dataset

    out, _ = dataset
    assert validate_dataset(out / "mix", CONFIG.quality).passed
    on_only = validate_dataset(out / "on", CONFIG.quality)
    assert {c.name for c in on_only.failures} == {"think_on_share:train", "think_on_share:eval"}
