"""The RL objective's named parts: advantage estimators (``rl.algorithm``) and reward functions
(``rl.reward``), each looked up by name here.

Adding one is one function and one registration::

    @register_advantage_estimator("mine")
    def mine(rl, rewards, modes, judge_len, mask): ...

The config accepts every registered name. The maths lives in the pure ``algorithm`` module; these
functions only read the switches of ``RLConfig`` and pass them on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from hipo.train import algorithm as alg

if TYPE_CHECKING:  # the config imports this module to check rl.algorithm and rl.reward
    from hipo.config import RLConfig

# (rl, rewards [B,G], modes [B,G], judge_len [B,G], response_mask [B,G,T]) -> advantages [B,G,T]
AdvantageEstimator = Callable[["RLConfig", Tensor, Tensor, Tensor, Tensor], Tensor]
# (rl, correct [N] bool, format_ok [N] bool) -> rewards [N] float
RewardFunction = Callable[["RLConfig", Tensor, Tensor], Tensor]

ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}
REWARD_FUNCTIONS: dict[str, RewardFunction] = {}

_F = TypeVar("_F", bound=Callable[..., Tensor])


def _register(table: dict[str, _F], what: str, name: str) -> Callable[[_F], _F]:
    def add(function: _F) -> _F:
        if name in table:
            raise ValueError(f"{what} {name!r} is registered twice")
        table[name] = function
        return function

    return add


def register_advantage_estimator(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    return _register(ADVANTAGE_ESTIMATORS, "advantage estimator", name)


def register_reward(name: str) -> Callable[[RewardFunction], RewardFunction]:
    return _register(REWARD_FUNCTIONS, "reward function", name)


def unknown_name(what: str, name: str, table: dict[str, object]) -> str:
    return f"unknown {what} {name!r}: use one of {', '.join(sorted(table))} (or register yours)"


def hipo_mode_advantages(rl: RLConfig, rewards: Tensor, modes: Tensor) -> tuple[Tensor, Tensor]:
    """(judge, answer) advantages [B, G] of HiPO with the configured bias and switches (§4–§5)."""
    biased = alg.bias_adjust(rewards, modes, rl.bias, rl.omega)
    return alg.hipo_advantages(
        biased, modes, rl.gamma, rl.local_norm, rl.global_mode_adv, rl.eps, rl.judge_std_floor
    )


@register_advantage_estimator("hipo")
def hipo(rl: RLConfig, rewards: Tensor, modes: Tensor, judge_len: Tensor, mask: Tensor) -> Tensor:
    """§4–§5: the judge span gets the mode advantage, the answer the in-mode advantage."""
    judge, answer = hipo_mode_advantages(rl, rewards, modes)
    return alg.token_advantages(judge, answer, judge_len, mask)


@register_advantage_estimator("grpo")
def grpo(rl: RLConfig, rewards: Tensor, modes: Tensor, judge_len: Tensor, mask: Tensor) -> Tensor:
    """§5 baseline: one group-normalised advantage on every token, modes ignored."""
    adv = alg.grpo_advantages(rewards, rl.eps)
    return alg.token_advantages(adv, adv, torch.zeros_like(judge_len), mask)


@register_reward("accuracy_format")
def accuracy_format(rl: RLConfig, correct: Tensor, format_ok: Tensor) -> Tensor:
    """§3: ACC + format_weight * FORMAT."""
    return alg.rewards(correct, format_ok, rl.format_weight)
