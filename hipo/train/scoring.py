"""Scoring one response, shared by RL (rollout) and ``hipo signal``: verify its answer, check its
format, read its mode tag; and turn verdicts into rewards with the configured reward function."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from hipo import template
from hipo.config import RLConfig
from hipo.tasks.base import Problem, Task
from hipo.train import algorithm as alg
from hipo.train.registry import REWARD_FUNCTIONS

MODE_CODES = {"on": alg.MODE_ON, "off": alg.MODE_OFF}


@dataclass(frozen=True)
class Score:
    correct: bool
    format_ok: bool
    mode: int  # algorithm MODE_* code of the response's mode tag


def score(task: Task, problem: Problem, text: str) -> Score:
    parsed = template.parse(text)
    return Score(
        correct=task.verify(problem, task.extract(text)),
        format_ok=parsed.format_ok,
        mode=MODE_CODES.get(parsed.mode, alg.MODE_NONE),
    )


def rewards(rl: RLConfig, correct: Tensor, format_ok: Tensor) -> Tensor:
    """Rewards of the verdicts with the reward function named by ``rl.reward``."""
    return REWARD_FUNCTIONS[rl.reward](rl, correct, format_ok)
