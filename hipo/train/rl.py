"""The HiPO / GRPO RL loop (docs/algorithm.md §3–§7).

Per step, on every rank: take this rank's share of the step's queries, sample G rollouts of each from
the current policy (auto mode), score them and compute per-token advantages, drop uniform groups if
asked, update the policy (one optimiser step per PPO epoch over the global batch), push the weights
to the rollout engine, log the metrics. Checkpoints every ``rl.save_every`` steps; a rerun with the
same ``out_dir`` resumes from the newest one and continues exactly as the interrupted run would have.
The optimiser step is hipo.train.optim's, as in SFT: plain torch (DDP across ranks) or DeepSpeed ZeRO-2/3
(``rl.optim.deepspeed``; bf16 on GPU when ``model.dtype`` is bfloat16).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hipo import storage
from hipo.config import DistributedEnv, RunConfig, distributed_env
from hipo.models.policy import Policy, save_policy
from hipo.tasks import Task, task_from_config
from hipo.tasks.base import Problem
from hipo.train import algorithm as alg
from hipo.train import checkpoint, distributed, preflight, rollout_engine
from hipo.train.cursor import DataCursor
from hipo.train.metrics import MetricsTracker, gather_rows, summarize
from hipo.train.optim import Updater, build_updater
from hipo.train.rollout import build_batch
from hipo.train.update import keep_groups, policy_update


@dataclass
class Trainer:
    """Everything one RL step touches."""

    config: RunConfig
    env: DistributedEnv
    task: Task
    policy: Policy
    updater: Updater
    ref_model: Any  # the frozen reference's forward, or None
    cursor: DataCursor
    engine: rollout_engine.RolloutEngine

    def step(self, step: int) -> dict[str, Any]:
        config, rl, env = self.config, self.config.rl, self.env
        start = time.perf_counter()
        queries = distributed.shard(self.cursor.take(rl.prompts_per_step), env)
        seed = (config.seed * 1_000_003 + step) * 1009 + env.rank
        prompts = [q.prompt for q in queries]
        completions = self.engine.generate(prompts, rl.group_size, config.rollout_sampling, seed)
        generated = time.perf_counter()
        batch = build_batch(queries, completions, self.task, self.policy.tokenizer, self.policy.ids, rl)
        scored = time.perf_counter()
        keep = torch.ones(batch.num_groups, dtype=torch.bool)
        if rl.drop_uniform_groups:
            keep = ~alg.uniform_groups(batch.rewards.view(-1, rl.group_size))
        dropped = distributed.all_reduce_sum((~keep).sum().to(distributed.device_for(env)))
        stats = policy_update(
            self.updater, keep_groups(batch, keep), rl, config.rollout_sampling.max_new_tokens, self.ref_model
        )
        updated = time.perf_counter()
        self.engine.sync()
        metrics = {**summarize(gather_rows(batch)), **stats, "dropped_groups": int(dropped)}
        end = time.perf_counter()
        return {
            **metrics,
            "time_generation": generated - start,
            "time_scoring": scored - generated,
            "time_sync": end - updated,
            "time_step": end - start,
            "tokens_per_s": metrics["response_tokens"] / (end - start),
        }


def _locations(out_dir: str | Path, checkpoint_uri: str | None) -> tuple[Path, str | None, str | None]:
    """(local working folder, checkpoint mirror, remote output prefix) for a local or s3:// ``out_dir``."""
    out = str(out_dir).rstrip("/")
    if not out.startswith("s3://"):
        return Path(out), checkpoint_uri, None
    local = Path(tempfile.gettempdir()) / f"hipo-rl-{hashlib.sha256(out.encode()).hexdigest()[:12]}"
    return local, checkpoint_uri or f"{out}/checkpoints", out


def train_rl(
    config: RunConfig,
    policy_source: str,
    out_dir: str | Path,
    task: Task | None = None,
    checkpoint_uri: str | None = None,
    run_name: str = "",
) -> dict[str, Any]:
    """Train ``policy_source`` with RL; writes checkpoints, ``metrics.jsonl`` and ``final/`` under
    ``out_dir`` (local or s3://; ``checkpoint_uri`` mirrors checkpoints elsewhere too). Returns the
    last step, why it stopped early (None or "collapse"), the final policy's location and last metrics.
    ``run_name``: the MLflow run's (``hipo.train.metrics.rl_run_name``)."""
    env, rl = distributed_env(), config.rl
    preflight.check_config(config, env)
    task = task or task_from_config(config.task)
    problems = preflight.train_problems(task, config)
    local, mirror, remote = _locations(out_dir, checkpoint_uri)
    created = distributed.init(env, always=rl.optim.deepspeed != "none")
    try:
        return _run(config, env, task, problems, policy_source, local, mirror, remote, run_name)
    finally:
        distributed.close(created)


def make_updater(config: RunConfig, env: DistributedEnv, model: Any) -> Updater:
    """The optimiser step of an RL run for ``model``: torch or DeepSpeed per ``rl.optim``, bf16 on GPU when
    ``model.dtype`` is bfloat16. Train with ``updater.module`` afterwards (DeepSpeed may wrap it)."""
    rl, cuda = config.rl, torch.cuda.is_available()
    bf16 = cuda and config.model.dtype == "bfloat16"
    ds_config = preflight.deepspeed_config(config, env, bf16, cuda)
    if ds_config is None:
        model.to(distributed.device_for(env))
    updater = build_updater(model, rl.optim, rl.steps * rl.ppo_epochs, env, ds_config, bf16)
    updater.module.eval()  # no dropout, so the first PPO ratio is exactly 1
    return updater


def build_trainer(
    config: RunConfig,
    env: DistributedEnv,
    task: Task,
    problems: list[Problem],
    policy_source: str,
    local: Path,
    ckpt: Path | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """The trainer of a run from ``policy_source``, or resumed from ``ckpt`` (with the loop state saved
    there; else ``{}``). ``local`` holds converted models and the rollout engine's files."""
    rl = config.rl
    policy = preflight.policy(str(ckpt or policy_source), config, local / "cache")
    updater = make_updater(config, env, policy.model)
    policy.model = updater.module
    ref = None
    if rl.kl_beta > 0:
        ref = updater.frozen(preflight.policy(policy_source, config, local / "cache").model)
    cursor = DataCursor(problems, config.seed)
    state: dict[str, Any] = {}
    if ckpt is not None:
        state = checkpoint.restore(ckpt, updater, env.rank)
        cursor.load_state_dict(state["cursor"])
    engine = rollout_engine.make(rl, policy, updater, local / f"rollout-policy-{env.rank}", config.seed)
    return Trainer(config, env, task, policy, updater, ref, cursor, engine), state


def _run(
    config: RunConfig,
    env: DistributedEnv,
    task: Task,
    problems: list[Problem],
    policy_source: str,
    local: Path,
    mirror: str | None,
    remote: str | None,
    run_name: str = "",
) -> dict[str, Any]:
    rl = config.rl
    distributed.seed_everything(config.seed, env.rank)
    ckpt_dir = local / "checkpoints"
    ckpt = checkpoint.latest(ckpt_dir, mirror) if distributed.is_main() else None
    distributed.barrier()
    ckpt = ckpt or checkpoint.latest(ckpt_dir)
    if ckpt is not None:
        checkpoint.check_compatible(ckpt, config, env)
    trainer, state = build_trainer(config, env, task, problems, policy_source, local, ckpt)
    policy, updater, cursor = trainer.policy, trainer.updater, trainer.cursor
    params = {**checkpoint.flatten(config.to_dict()), "policy_source": policy_source}
    params["world_size"] = env.world_size
    tracker = MetricsTracker(local, config, distributed.is_main(), params, run_name)
    step = state.get("step", 0)
    if "tracker" in state:
        tracker.load_state_dict(state["tracker"])
    meta = {"config": config.to_dict(), "world_size": env.world_size, "policy_source": policy_source}
    stopped, metrics = None, {}
    while step < rl.steps and stopped is None:
        step += 1
        metrics = trainer.step(step)
        tracker.log(step, metrics)
        stopped = "collapse" if tracker.collapsed and rl.stop_on_collapse else None
        if step % rl.save_every == 0 or step == rl.steps or stopped:
            trainer_state = {"step": step, "cursor": cursor.state_dict(), "tracker": tracker.state_dict()}
            keep = rl.keep_checkpoints
            checkpoint.save(ckpt_dir, step, policy, updater, trainer_state, meta, keep, mirror)
            if remote and distributed.is_main():
                storage.write_bytes(f"{remote}/metrics.jsonl", tracker.path.read_bytes())
    with updater.full_parameters():
        if distributed.is_main():
            save_policy(policy, local / "final")
    if remote and distributed.is_main():
        storage.upload_dir(local / "final", f"{remote}/final")
    tracker.close()
    distributed.barrier()
    final = f"{remote}/final" if remote else str(local / "final")
    return {"step": step, "stopped": stopped, "final_dir": final, "metrics": metrics}
