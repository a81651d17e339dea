"""Shared by the RL tests: a tiny policy warm-started on the format, configs, a one-problem task."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from hipo import template
from hipo.config import ModelConfig, RunConfig, build_config
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.base import Problem
from hipo.tasks.teacher import PLACEHOLDER_JUDGE, ScriptedTeacher
from hipo.train.models import load_policy, save_policy
from hipo.train.rollout import RolloutBatch, pad_rows

TINY = {"tiny_hidden": 64, "tiny_layers": 2, "tiny_heads": 2}


def warm_start(out: Path, steps: int = 600, levels: tuple[int, ...] = (1,), seed: int = 0) -> Path:
    """A tiny Qwen3 taught the response format (and some sums) by plain cross-entropy on the scripted
    teacher's responses: mostly think-off, 20% think-on, short judge texts."""
    policy = load_policy("tiny", ModelConfig(**TINY), out / "cache", seed=seed)
    tok, rng, teacher = policy.tokenizer, random.Random(seed), ScriptedTeacher(seed=seed)
    rows = []
    for problem in ArithmeticTask(levels).problems("train", 400, seed):
        mode = "on" if rng.random() < 0.2 else "off"
        judge = "Carry digits." if mode == "on" else "Small sum."
        response = teacher.respond(problem, mode, rng).replace(PLACEHOLDER_JUDGE, judge)
        messages = [{"role": "user", "content": problem.prompt}]
        head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        tail = tok.encode(response + template.TURN_END, add_special_tokens=False)
        rows.append((tok.encode(head, add_special_tokens=False), tail))
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    policy.model.train()
    for _ in range(steps):
        batch = rng.sample(rows, 32)
        width = max(len(h) + len(r) for h, r in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full_like(ids, -100)
        mask = torch.zeros_like(ids)
        for i, (head, response) in enumerate(batch):
            ids[i, : len(head) + len(response)] = torch.tensor(head + response)
            labels[i, len(head) : len(head) + len(response)] = torch.tensor(response)
            mask[i, : len(head) + len(response)] = 1
        policy.model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    policy.model.eval()
    return save_policy(policy, out / "policy")


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
