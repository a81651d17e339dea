"""Cold-start supervised fine-tuning on the hybrid set (docs/algorithm.md §2), one core to many GPUs.

The loss is the token mean of the cross-entropy on assistant tokens (judge block through the end of
turn) over the whole global batch, so one process and N ranks make the same update for the same batch.
Runs as a plain process, under ``torchrun`` (gloo on CPU, nccl on GPU, DistributedDataParallel) or with
DeepSpeed ZeRO-2/3 (``sft.optim.deepspeed``). Rank 0 writes a ``save_pretrained`` checkpoint with its
tokenizer and ``metrics.jsonl`` (one JSON line per logged step) to ``out_dir``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hipo.config import DistributedEnv, RunConfig, distributed_env
from hipo.models.policy import Policy, load_policy, save_policy
from hipo.storage.datasets import DatasetError
from hipo.train import distributed
from hipo.train.metrics import MlflowCurve
from hipo.train.optim import Updater, accumulation_steps, build_updater, deepspeed_config
from hipo.train.sft_data import (
    IGNORE,
    Example,
    collate,
    encode,
    micro_batches,
    read_sft_dataset,
    shuffled_batches,
)


def label_window(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` with the loss window cut to the columns from the first one that predicts a label (in any
    row) on: the lm head and the cross-entropy skip the prompt columns before it (``logits_to_keep``),
    which on a large vocabulary is a good part of a step. The loss is the same sum over the same labels."""
    labels = batch["labels"]
    first = int((labels != IGNORE).int().argmax(-1).min())  # every row has a label
    start = max(first - 1, 0)
    return {**batch, "labels": labels[:, start:], "logits_to_keep": labels.shape[1] - start}


def _examples(
    policy: Policy, frame: Any, max_length: int, split: str, balance: str = "none"
) -> tuple[list[Example], list[Any], int]:
    """Encoded rows that fit in ``max_length`` (a truncated target would never end its turn), each
    row's sampling group (its level for ``balance="level"``, else one group) and the number dropped."""
    encoded = encode(policy.tokenizer, frame)
    fits = [len(e.ids) <= max_length for e in encoded]
    kept = [e for e, ok in zip(encoded, fits, strict=True) if ok]
    if split == "train" and not kept:
        raise DatasetError(f"no train row fits in sft.max_length={max_length} tokens: raise it")
    # rows without a level form one group of their own (NaN keys would each be a group)
    keys = [None if pd.isna(k) else k for k in frame["level"]] if balance == "level" else [0] * len(encoded)
    groups = [k for k, ok in zip(keys, fits, strict=True) if ok]
    return kept, groups, len(encoded) - len(kept)


@torch.no_grad()
def evaluate(
    updater: Updater, examples: list[Example], micro: int, env: DistributedEnv, pad_id: int
) -> float:
    """Token-mean loss over the eval rows (cut to a multiple of the world size: equal work per rank)."""
    usable = examples[: len(examples) - len(examples) % env.world_size]
    mine = distributed.shard(usable, env)
    lengths = [len(e.ids) for e in mine]
    totals = torch.zeros(2, dtype=torch.float64, device=updater.device)
    updater.module.eval()
    for part in micro_batches(range(len(mine)), lengths, micro):
        batch = label_window(collate([mine[i] for i in part], pad_id, updater.device))
        out = updater.forward(**batch, num_items_in_batch=1)  # reduction "sum", divided by 1
        totals += torch.stack([out.loss.double(), (batch["labels"][:, 1:] != -100).sum().double()])
    updater.module.train()
    distributed.all_reduce_sum(totals)
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


class _Log:
    """Progress lines (stderr), metrics.jsonl rows and the MLflow curves, written by rank 0 only."""

    def __init__(self, path: Path, main: bool, curve: MlflowCurve) -> None:
        if main:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", encoding="utf-8") if main else None
        self.curve = curve

    def write(self, row: dict[str, Any]) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.curve.log(row["step"], row)
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()]
        print("sft " + " · ".join(parts), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.curve.close()


def train_sft(
    config: RunConfig,
    dataset_dir: str | Path,
    out_dir: str | Path,
    base: Policy | None = None,
    cache_dir: str | Path | None = None,
    log_every: int = 10,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base`` (trained in place; default: load ``config.model.base``) on ``dataset_dir``.
    ``before_step(step)`` runs before each step, outside its timing (a benchmark alternates steps with
    a peer's there).

    Returns the final metrics (losses, tokens, speed).
    ``cache_dir`` holds converted / downloaded base models (default: a folder in the system temp dir).
    Inputs are checked before any compute: batch divisibility, dataset columns, empty splits.
    """
    env, sft, optim = distributed_env(), config.sft, config.sft.optim
    accumulation = accumulation_steps(sft.batch_size, optim.micro_batch_size, env.world_size)
    frames = read_sft_dataset(dataset_dir)
    if sft.balance == "level" and "level" not in frames["train"]:
        raise DatasetError(
            f"sft.balance=level draws the train rows of {dataset_dir} level by level but it has no 'level' "
            "column: add one or set sft.balance=none"
        )
    out = Path(out_dir)
    created = distributed.init(env, always=optim.deepspeed != "none")
    try:
        distributed.seed_everything(config.seed, env.rank)
        cuda = torch.cuda.is_available()
        bf16 = cuda and config.model.dtype == "bfloat16"
        ds_config = (
            deepspeed_config(optim, sft.batch_size, accumulation, bf16, cuda)
            if optim.deepspeed != "none"
            else None
        )
        keep_alive = None
        if ds_config is not None and optim.deepspeed == "zero3" and base is None:
            from transformers.integrations import HfDeepSpeedConfig

            keep_alive = HfDeepSpeedConfig(ds_config)  # from_pretrained then partitions while loading
        cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "hipo-models"
        policy = base or load_policy(config.model.base, config.model, cache, seed=config.seed)
        train, groups, dropped = _examples(policy, frames["train"], sft.max_length, "train", sft.balance)
        evals, _, eval_dropped = _examples(policy, frames["eval"], sft.max_length, "eval")
        if ds_config is None:
            policy.model.to(distributed.device_for(env))
        updater = build_updater(policy.model, optim, sft.steps, env, ds_config, bf16)
        policy.model = updater.module
        params = {"data": str(dataset_dir), "model.base": config.model.base, **config.sft.model_dump()}
        curve = MlflowCurve(config, f"sft ({Path(str(dataset_dir).rstrip('/')).name})", params)
        log = _Log(out / "metrics.jsonl", distributed.is_main(), curve)
        parts = (config, updater, policy, train, groups, evals, env, accumulation, log, log_every)
        metrics = _loop(*parts, before_step)
        metrics.update(dropped_too_long=dropped + eval_dropped, world_size=env.world_size)
        with updater.full_parameters():
            if distributed.is_main():
                save_policy(policy, out)
        distributed.barrier()
        del keep_alive
        return metrics
    finally:
        distributed.close(created)


def _loop(
    config: RunConfig,
    updater: Updater,
    policy: Policy,
    train: list[Example],
    groups: list[Any],
    evals: list[Example],
    env: DistributedEnv,
    accumulation: int,
    log: _Log,
    log_every: int,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    sft, micro = config.sft, config.sft.optim.micro_batch_size
    pad_id = policy.tokenizer.pad_token_id
    lengths = [len(e.ids) for e in train]
    batches = shuffled_batches(groups, sft.batch_size, config.seed)
    first_eval = evaluate(updater, evals, micro, env, pad_id) if evals else None
    if evals:
        log.write({"step": 0, "eval_loss": first_eval})
    losses, train_s, tokens, window_tokens, window_s = [], 0.0, 0, 0, 0.0
    labels, window_labels = 0, 0  # tokens that carry loss (the response and its end of turn)
    updater.module.train()
    row: dict[str, Any] = {}
    for step in range(1, sft.steps + 1):
        if before_step is not None:
            before_step(step)
        started = time.perf_counter()
        batch_rows = next(batches)
        n_labels = sum(train[i].n_labels for i in batch_rows)  # the global normaliser
        parts = micro_batches(distributed.shard(batch_rows, env), lengths, micro)
        assert len(parts) == accumulation
        step_loss = torch.zeros((), device=updater.device)
        for k, part in enumerate(parts):
            batch = label_window(collate([train[i] for i in part], pad_id, updater.device))
            with updater.micro_step(last=k == len(parts) - 1):
                loss = updater.forward(**batch, num_items_in_batch=n_labels).loss
                updater.backward(loss)
            step_loss += loss.detach()
        grad_norm = updater.step()
        losses.append(float(distributed.all_reduce_sum(step_loss)))
        elapsed = time.perf_counter() - started
        step_tokens = sum(len(train[i].ids) for i in batch_rows)
        train_s, tokens = train_s + elapsed, tokens + step_tokens
        window_s, window_tokens = window_s + elapsed, window_tokens + step_tokens
        labels, window_labels = labels + n_labels, window_labels + n_labels
        evaluate_now = evals and (step % sft.eval_every == 0 or step == sft.steps)
        if step % log_every == 0 or step == sft.steps or evaluate_now:
            row = {
                "step": step,
                "loss": sum(losses) / len(losses),
                "lr": updater.lr,
                "grad_norm": grad_norm,
                "tokens_per_s": window_tokens / window_s,
                "label_tokens_per_s": window_labels / window_s,
                "elapsed_s": train_s,
                "eta_s": train_s / step * (sft.steps - step),
            }
            if evaluate_now:
                row["eval_loss"] = evaluate(updater, evals, micro, env, pad_id)
            log.write(row)
            losses, window_tokens, window_labels, window_s = [], 0, 0, 0.0
    log.close()
    return {
        "steps": sft.steps,
        "train_loss": row.get("loss"),
        "eval_loss": row.get("eval_loss"),
        "initial_eval_loss": first_eval,
        "tokens": tokens,
        "train_seconds": train_s,
        "steps_per_s": sft.steps / train_s,
        "tokens_per_s": tokens / train_s,
        "label_tokens_per_s": labels / train_s,
    }
