"""Policies the benchmarks start from (the RL tests use them too)."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from hipo import template
from hipo.config import ModelConfig
from hipo.models.policy import load_policy, save_policy
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.teacher import PLACEHOLDER_JUDGE, ScriptedTeacher

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
