"""Cold-start SFT on a generated arithmetic set: masking, learning, a usable checkpoint, input checks,
torchrun on CPU (gloo) matching one process, DeepSpeed ZeRO-2 on CPU."""

import json
import os
from collections import Counter

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torchrun_support import torchrun

from hipo import template
from hipo.cli import main
from hipo.config import ConfigError, SamplingConfig, build_config
from hipo.data.pipeline import generate_dataset
from hipo.engines.hf import HFEngine
from hipo.engines.scripted import ScriptedEngine
from hipo.models.policy import load_policy
from hipo.storage.datasets import DatasetError
from hipo.tasks import get_task
from hipo.tasks.rationale import TemplateRationaleWriter
from hipo.train import sft as sft_module
from hipo.train.sft import train_sft
from hipo.train.sft_data import IGNORE, collate, encode, read_sft_dataset, shuffled_batches

SMALL_MODEL = {"tiny_hidden": 64, "tiny_layers": 2, "tiny_heads": 2}


def sft_config(steps: int, batch: int = 32, micro: int = 16, lr: float = 8e-3, deepspeed="none", **sft):
    optim = {"lr": lr, "micro_batch_size": micro, "deepspeed": deepspeed}
    return build_config(
        {"model": SMALL_MODEL, "sft": {"steps": steps, "batch_size": batch, "optim": optim, **sft}}
    )


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft-data")
    config = build_config({"task": {"train_size": 300, "eval_size": 60}})
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), out)
    return out / "mix"


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft-out")
    metrics = train_sft(sft_config(120, eval_every=60), dataset, out, log_every=20)
    return metrics, out


def test_labels_cover_the_response_only(dataset, tmp_path):
    policy = load_policy("tiny", build_config({"model": SMALL_MODEL}).model, tmp_path)
    frame = read_sft_dataset(dataset)["train"].head(4)
    examples = encode(policy.tokenizer, frame)
    batch = collate(examples, policy.tokenizer.pad_token_id, device="cpu")
    for row, e in enumerate(examples):
        labels = batch["labels"][row]
        assert (labels[: e.prompt_len] == IGNORE).all() and (labels[len(e.ids) :] == IGNORE).all()
        assert labels[e.prompt_len] == policy.ids.judge_open
        assert labels[len(e.ids) - 1] == policy.ids.turn_end
        head = policy.tokenizer.decode(e.ids[: e.prompt_len])
        assert head.endswith("<|im_start|>assistant\n") and frame["prompt"][row] in head
        assert (
            policy.tokenizer.decode(labels[e.prompt_len : len(e.ids)])
            == frame["response"][row] + "<|im_end|>"
        )
    assert batch["attention_mask"].sum() == sum(len(e.ids) for e in examples)


def test_shuffled_batches_are_seeded_mixed_epochs():
    lengths = [(i * 37) % 101 for i in range(640)]
    first = shuffled_batches([0] * 640, 32, seed=1)
    batches = [next(first) for _ in range(20)]
    again = shuffled_batches([0] * 640, 32, seed=1)
    assert [next(again) for _ in range(20)] == batches
    assert next(shuffled_batches([0] * 640, 32, seed=2)) != batches[0]
    assert all(len(b) == 32 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(640))  # one epoch, every row once
    assert sorted(next(first)) != sorted(batches[0])  # the next epoch is shuffled anew
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / 20
    assert spread > 80  # mixed: a batch spans almost the whole 0..100 range of lengths


def test_shuffled_batches_draw_every_group_equally_often():
    groups = [1] * 20 + [2] * 100 + [3] * 70  # rows 0-19 level 1, 20-119 level 2, 120-189 level 3
    stream = shuffled_batches(groups, 30, seed=0)
    epoch = [i for _ in range(10) for i in next(stream)]  # 300 rows: one epoch of 3 x 100
    assert Counter(groups[i] for i in epoch) == {1: 100, 2: 100, 3: 100}
    assert Counter(i for i in epoch if groups[i] == 1) == {i: 5 for i in range(20)}  # 5 copies each
    assert sorted(i for i in epoch if groups[i] == 2) == list(range(20, 120))  # the largest: once
    level_3 = Counter(i for i in epoch if groups[i] == 3)
    assert set(level_3) == set(range(120, 190)) and set(level_3.values()) == {1, 2}  # 100 of 2 x 70


def test_loss_falls_and_metrics_are_logged(trained):
    metrics, out = trained
    assert metrics["eval_loss"] < 0.25 * metrics["initial_eval_loss"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0] == {"step": 0, "eval_loss": metrics["initial_eval_loss"]}
    assert [r["step"] for r in rows[1:]] == [20, 40, 60, 80, 100, 120]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "eta_s"} <= rows[1].keys()
    assert "eval_loss" in rows[3] and rows[-1]["eval_loss"] == metrics["eval_loss"]
    assert rows[-1]["lr"] == 0.0 and rows[1]["loss"] > rows[-1]["loss"]


def test_checkpoint_loads_and_writes_hipo_responses(trained, dataset, tmp_path):
    _, out = trained
    policy = load_policy(str(out), build_config({"model": SMALL_MODEL}).model, tmp_path)
    prompts = pd.read_parquet(dataset / "eval.parquet")["prompt"].tolist()[:16]
    engine = HFEngine(policy.model, policy.tokenizer, batch_size=16)
    completions = engine.generate(prompts, 1, SamplingConfig(greedy=True, max_new_tokens=128))
    parsed = [template.parse(row[0].text) for row in completions]
    assert sum(p.format_ok for p in parsed) >= 4, [row[0].text for row in completions[:3]]


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a policy was loaded before the inputs were checked")

    monkeypatch.setattr(sft_module, "load_policy", refuse)


def test_bad_inputs_fail_before_any_training(dataset, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    with pytest.raises(ConfigError, match=r"batch size 30 does not divide into micro-batches of 16"):
        train_sft(sft_config(5, batch=30), dataset, tmp_path / "out")
    no_response = tmp_path / "no-response"
    no_response.mkdir()
    for split in ("train", "eval"):
        pd.read_parquet(dataset / f"{split}.parquet")[["prompt", "mode"]].to_parquet(
            no_response / f"{split}.parquet"
        )
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['response'\]"):
        train_sft(sft_config(5), no_response, tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    frame = pd.read_parquet(dataset / "train.parquet")
    frame.head(0).to_parquet(empty / "train.parquet")
    frame.head(5).to_parquet(empty / "eval.parquet")
    with pytest.raises(DatasetError, match="the train split has no rows"):
        train_sft(sft_config(5), empty, tmp_path / "out")
    no_level = tmp_path / "no-level"
    no_level.mkdir()
    for split in ("train", "eval"):
        pd.read_parquet(dataset / f"{split}.parquet").drop(columns=["level"]).to_parquet(
            no_level / f"{split}.parquet"
        )
    with pytest.raises(DatasetError, match=r"no 'level' column: add one or set sft\.balance=none"):
        train_sft(sft_config(5), no_level, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_input(dataset, tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    args = ["train", "sft", "--data", str(dataset), "--out", str(tmp_path / "o"), "--base", "tiny"]
    assert main([*args, "--set", "sft.batch_size=20"]) == 2
    assert "batch size 20 does not divide" in capsys.readouterr().err


PARITY = {"steps": 2, "batch": 8, "micro": 2, "lr": 1e-2}


def test_torchrun_two_ranks_match_one_process(dataset, tmp_path):
    overrides = [
        *(f"model.{k}={v}" for k, v in SMALL_MODEL.items()),
        "sft.steps=2", "sft.batch_size=8", "sft.optim.micro_batch_size=2", "sft.optim.lr=0.01",
    ]  # fmt: skip
    command = ["-m", "hipo.cli", "train", "sft", "--data", dataset, "--out", tmp_path / "two"]
    done = torchrun(*command, *(arg for item in overrides for arg in ("--set", item)))
    two = json.loads(done.stdout[done.stdout.index("{") :])
    assert two["world_size"] == 2

    one = train_sft(sft_config(**PARITY), dataset, tmp_path / "one")  # 4 micro-batches, not 2 x 2
    assert one["world_size"] == 1
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-5)
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("one", "two"))
    # Adam's first steps are about lr x sign(gradient): float noise moves near-zero gradients a little
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_deepspeed_zero2_on_cpu_trains_like_plain_torch(dataset, tmp_path, deepspeed_cpu):
    plain = train_sft(sft_config(**{**PARITY, "steps": 4}, eval_every=4), dataset, tmp_path / "plain")
    config = sft_config(**{**PARITY, "steps": 4}, eval_every=4, deepspeed="zero2")
    zero = train_sft(config, dataset, tmp_path / "zero2")
    assert zero["eval_loss"] < zero["initial_eval_loss"] - 0.5
    assert zero["eval_loss"] == pytest.approx(plain["eval_loss"], rel=1e-5)
    assert load_policy(str(tmp_path / "zero2"), config.model, tmp_path).ids.turn_end > 0
    assert not torch.distributed.is_initialized()  # the one-process group is gone again
    assert "LOCAL_RANK" not in os.environ
