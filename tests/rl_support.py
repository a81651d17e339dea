"""Shared by the RL tests: configs, a one-problem task, a synthetic batch, a killed run; the tiny policy
warm-started on the format comes from bench.policies (the RL benchmark starts from it too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.policies import TINY, warm_start  # noqa: F401  (re-exported for the RL tests)
from hipo import template
from hipo.config import RunConfig, build_config
from hipo.tasks.base import Problem
from hipo.train.rollout import RolloutBatch, pad_rows


def rl_config(values: dict[str, Any] | None = None, *overrides: str) -> RunConfig:
    """Small, fast RL settings on the easiest level; ``values`` and ``overrides`` adjust them."""
    base = {
        "task": {"difficulties": [1], "train_size": 16},
        "model": TINY,
        "rl": {
            "steps": 3,
            "prompts_per_step": 4,
            "group_size": 4,
            "save_every": 2,
            "optim": {"lr": 1e-3, "micro_batch_size": 8},
        },
        "rollout_sampling": {"max_new_tokens": 40},
    }
    return build_config(_merge(base, values or {}), overrides)


def _merge(tree: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(tree)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


class OneProblemTask:
    """Always the same question: with a model that always answers it the same way, the thinking rate
    is pinned (for the collapse alarm)."""

    name = "one-problem"

    def problems(self, split: str, n: int | None = None, seed: int = 0) -> list[Problem]:
        return [Problem("two-plus-three", "What is 2 + 3?", "5", "test", difficulty=1)]

    def extract(self, response: str) -> str | None:
        return template.parse(response).answer

    def verify(self, problem: Problem, predicted: str | None) -> bool:
        return predicted == problem.answer


def synthetic_batch(vocab: int, groups: int = 4, group_size: int = 4, seed: int = 0) -> RolloutBatch:
    """Random prompts and responses of varied lengths with random advantages: a fixed batch to update on."""
    gen = torch.Generator().manual_seed(seed)
    n = groups * group_size
    lengths = [int(x) for x in torch.randint(1, 12, (n,), generator=gen)]
    prompt_lengths = [int(x) for x in torch.randint(3, 7, (n,), generator=gen)]
    prompts = [torch.randint(1, vocab, (k,), generator=gen).tolist() for k in prompt_lengths]
    responses = [torch.randint(1, vocab, (k,), generator=gen).tolist() for k in lengths]
    input_ids, attention, width_p, mask = pad_rows(prompts, responses, pad_id=0)
    adv = torch.randn(n, mask.shape[1], generator=gen) * mask
    zeros = torch.zeros(n)
    return RolloutBatch(
        input_ids, attention, width_p, mask, adv, group_size, zeros, zeros.bool(), zeros.bool(),
        zeros.long(), zeros.long(),
    )  # fmt: skip


def run_killed_at(step: int, config: RunConfig, policy: str, out: Path, monkeypatch: Any) -> None:
    """Run ``train_rl`` into ``out`` and kill it (KeyboardInterrupt) as ``step`` begins."""
    import pytest

    from hipo.train.rl import Trainer, train_rl

    original = Trainer.step

    def killed(self: Trainer, at: int) -> dict[str, Any]:
        if at == step:
            raise KeyboardInterrupt("killed")
        return original(self, at)

    monkeypatch.setattr(Trainer, "step", killed)
    with pytest.raises(KeyboardInterrupt):
        train_rl(config, policy, out)
    monkeypatch.setattr(Trainer, "step", original)
