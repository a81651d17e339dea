"""Rollouts → training tensors: verify and score completions (§3), find modes and judge spans, compute
the configured estimator's advantages per token (§4–§5), and pad everything into one batch.

Layout of a batch of N = B·G rows (B queries, G rollouts each, group after group): the chat prompt is
left-padded to width P and the response (prefill included) right-padded to width T, so response token
j of every row sits at column P + j.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from hipo import template
from hipo.config import RLConfig
from hipo.engines.base import Completion
from hipo.engines.prompting import chat_prompt
from hipo.tasks.base import Problem, Task
from hipo.train import scoring
from hipo.train.registry import ADVANTAGE_ESTIMATORS
from hipo.train.scoring import score


@dataclass(frozen=True)
class RolloutBatch:
    """One rank's rollouts of a step. Per-row fields have N = groups · group_size rows."""

    input_ids: Tensor  # [N, P+T]
    attention_mask: Tensor  # [N, P+T]
    prompt_width: int  # P
    response_mask: Tensor  # [N, T] bool
    advantages: Tensor  # [N, T] float
    group_size: int
    rewards: Tensor  # [N] before the bias adjustment
    correct: Tensor  # [N] bool
    format_ok: Tensor  # [N] bool
    modes: Tensor  # [N] algorithm MODE_* codes
    difficulty: Tensor  # [N] long, -1 where unknown

    @property
    def num_groups(self) -> int:
        return self.input_ids.shape[0] // self.group_size

    @property
    def lengths(self) -> Tensor:
        """Response tokens per row."""
        return self.response_mask.sum(-1)

    def _tensors(self) -> dict[str, Tensor]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if isinstance(value, Tensor)}

    def to(self, device: torch.device | str) -> RolloutBatch:
        return replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    def select_groups(self, keep: Tensor) -> RolloutBatch:
        """The batch restricted to the groups where ``keep`` [groups] is True."""
        rows = keep.repeat_interleave(self.group_size)
        return replace(self, **{k: v[rows] for k, v in self._tensors().items()})


def pad_rows(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int
) -> tuple[Tensor, Tensor, int, Tensor]:
    """(input_ids, attention_mask, P, response_mask) of prompts left-padded to P, responses right-padded."""
    width_p = max(map(len, prompts))
    width_t = max(1, *map(len, responses))
    input_ids = torch.full((len(prompts), width_p + width_t), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        input_ids[row, width_p - len(prompt) : width_p] = torch.tensor(prompt, dtype=torch.long)
        input_ids[row, width_p : width_p + len(response)] = torch.tensor(response, dtype=torch.long)
        attention[row, width_p - len(prompt) : width_p + len(response)] = 1
    return input_ids, attention, width_p, attention[:, width_p:].bool()


def advantages(rl: RLConfig, rewards: Tensor, modes: Tensor, judge_len: Tensor, mask: Tensor) -> Tensor:
    """Per-token advantages [B, G, T] from rewards, modes and judge lengths [B, G] by the estimator
    ``rl.algorithm`` names (§4–§5)."""
    return ADVANTAGE_ESTIMATORS[rl.algorithm](rl, rewards, modes, judge_len, mask)


def build_batch(
    problems: Sequence[Problem],
    completions: Sequence[Sequence[Completion]],
    task: Task,
    tokenizer: object,
    ids: template.HipoTokenIds,
    rl: RLConfig,
) -> RolloutBatch:
    """Score the completions of ``problems`` (one row of G per problem) and build the training batch."""
    group = rl.group_size
    prompts, responses, correct, format_ok, difficulty = [], [], [], [], []
    for problem, row in zip(problems, completions, strict=True):
        if len(row) != group:
            raise ValueError(f"expected {group} completions for {problem.id}, got {len(row)}")
        base, _ = chat_prompt(tokenizer, problem.prompt, "auto")
        prompt_ids = tokenizer.encode(base, add_special_tokens=False)
        for completion in row:
            if completion.token_ids is None:
                raise ValueError("RL needs engines that return token ids (hf, vllm)")
            prompts.append(prompt_ids)
            responses.append(completion.token_ids)
            verdict = score(task, problem, completion.text)
            correct.append(verdict.correct)
            format_ok.append(verdict.format_ok)
            difficulty.append(-1 if problem.difficulty is None else problem.difficulty)
    input_ids, attention, width_p, mask = pad_rows(prompts, responses, tokenizer.pad_token_id)
    response_ids = input_ids[:, width_p:]
    modes = template.token_modes(response_ids, mask, ids)
    judge_len = template.judge_span_lengths(response_ids, mask, ids)
    acc, ok = torch.tensor(correct), torch.tensor(format_ok)
    rewards = scoring.rewards(rl, acc, ok)
    shape = (len(problems), group)
    adv = advantages(rl, rewards.view(shape), modes.view(shape), judge_len.view(shape), mask.view(*shape, -1))
    return RolloutBatch(
        input_ids=input_ids,
        attention_mask=attention,
        prompt_width=width_p,
        response_mask=mask,
        advantages=adv.reshape(len(prompts), -1),
        group_size=group,
        rewards=rewards,
        correct=acc,
        format_ok=ok,
        modes=modes,
        difficulty=torch.tensor(difficulty, dtype=torch.long),
    )
