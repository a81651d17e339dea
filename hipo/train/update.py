"""One policy update from a batch of rollouts (§6): π_old and reference log-probs, then ``ppo_epochs``
passes over micro-batches, each pass one optimiser step over the whole global batch.

Work that cannot change the update is skipped (docs/speed.md): with one PPO epoch and no reference
model π_old is the policy being trained, so its log-probs come from the training forward itself
(detached) instead of a separate pass; without a KL term rows whose advantages are all zero are not
forwarded at all. The entropy metric is then over the rows the update forwards. Rows that share a
prompt run it once where that is cheaper (hipo.train.logprobs), with the same gradient up to float
rounding.

Every micro-batch loss is weighted by its share of the global aggregation units (tokens, non-empty
sequences or sequences, per ``loss_agg``) and the updater (hipo.train.optim: torch / DDP or DeepSpeed)
averages gradients over ranks, so the step equals one step on the global batch in a single process.
Ranks may hold different numbers of rows (dropped groups): the ones with fewer micro-batches run
zero-weighted extra passes, because DDP and ZeRO reduce gradients collectively in every backward.
The model stays in eval mode: with dropout off the PPO ratio is exactly 1 on the first pass.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from hipo.config import RLConfig
from hipo.train import algorithm as alg
from hipo.train import distributed
from hipo.train.logprobs import batch_logprobs, micro_batches, response_logprobs, shares_prompts
from hipo.train.optim import Updater
from hipo.train.rollout import RolloutBatch


def agg_units(mask: Tensor, agg: alg.LossAgg) -> Tensor:
    """How many units ``alg.aggregate`` averages over in ``mask`` [N, T]."""
    if agg == "token_mean":
        return mask.sum()
    if agg == "seq_mean_token_mean":
        return mask.any(-1).sum()
    return torch.tensor(mask.shape[0], device=mask.device)


def keep_groups(batch: RolloutBatch, keep: Tensor) -> RolloutBatch:
    """``batch`` without the groups ``keep`` [groups] drops. A rank left with none keeps its first group
    with an empty response mask: it adds nothing to the update, but the rank still takes part in it."""
    if bool(keep.any()):
        return batch.select_groups(keep)
    first = batch.select_groups(torch.arange(batch.num_groups) == 0)
    empty = torch.zeros_like(first.response_mask)
    return replace(first, response_mask=empty, advantages=torch.zeros_like(first.advantages))


def learning_rows(batch: RolloutBatch, with_kl: bool) -> Tensor:
    """Rows the update forwards, shortest first (micro-batches of alike lengths carry less padding).

    Without a KL term a row whose advantages are all zero adds exactly nothing to the gradient (its
    surrogate is -0·ratio at every token), so it is left out; its tokens still count in the loss
    normaliser, so the update is the same. Uniform groups (every reward equal) are such rows."""
    rows = torch.arange(batch.input_ids.shape[0], device=batch.input_ids.device)
    if not with_kl:
        rows = rows[((batch.advantages != 0) & batch.response_mask).any(-1)]
    return rows[torch.argsort(batch.attention_mask[rows].sum(-1), stable=True)]


def policy_update(
    updater: Updater,
    batch: RolloutBatch,
    rl: RLConfig,
    norm_len: int,
    ref_model: Any = None,
) -> dict[str, float]:
    """Update the updater's model in place from this rank's ``batch`` (at least one row); ``ref_model``
    is the frozen reference's forward (``updater.frozen``). Returns globally reduced stats and timings."""
    batch = batch.to(updater.device)
    size, mask = rl.optim.micro_batch_size, batch.response_mask
    total_units = float(distributed.all_reduce_sum(agg_units(mask, rl.loss_agg).double()))
    order = learning_rows(batch, ref_model is not None)
    ids, attention, adv, mask = (
        t[order] for t in (batch.input_ids, batch.attention_mask, batch.advantages, mask)
    )
    slices = list(micro_batches(len(order), size))
    # every rank runs as many passes as the busiest (collective backward), and at least one: the
    # optimiser steps on zero gradients then, as it would have without the skipped rows
    passes = int(distributed.all_reduce_max(torch.tensor(max(len(slices), 1), device=updater.device)))
    # one epoch and no reference: π_old is the current policy, so its log-probs are the training
    # forward's own, detached; no separate pass
    reuse = rl.ppo_epochs == 1 and ref_model is None
    # rows of a group run their prompt once where that is cheaper (hipo.train.logprobs)
    share = shares_prompts(updater.module)
    lr, start = updater.lr, time.perf_counter()
    args = (ids, attention, batch.prompt_width, size)
    old, entropy = (
        (None, None)
        if reuse
        else batch_logprobs(updater.forward, *args, entropy=True, passes=passes, share_prompts=share)
    )
    ref = (
        batch_logprobs(ref_model, *args, passes=passes, share_prompts=share)[0]
        if ref_model is not None
        else None
    )
    logprob_s = time.perf_counter() - start
    # loss, clip, kl, grad norm, entropy, tokens, entropy tokens
    sums = torch.zeros(7, dtype=torch.float64, device=updater.device)
    sums[5] = batch.response_mask.sum()
    if entropy is not None:
        sums[4], sums[6] = (entropy * mask).sum(), mask.sum()
    epochs = rl.ppo_epochs if total_units > 0 else 0  # nothing to learn from: no step at all
    padded = [(rows, True) for rows in slices] + [(slice(0, 1), False)] * (passes - len(slices))
    if not len(order):
        ids, attention, mask = batch.input_ids[:1], batch.attention_mask[:1], batch.response_mask[:1]
        adv = torch.zeros_like(batch.advantages[:1])
    for _ in range(epochs):
        for k, (rows, real) in enumerate(padded):
            with updater.micro_step(last=k == passes - 1):
                logp, ent = response_logprobs(
                    updater.forward, ids[rows], attention[rows], batch.prompt_width, reuse, share
                )
                loss, stats = alg.policy_loss(
                    logp, logp.detach() if reuse else old[rows], adv[rows], mask[rows], rl.clip_low,
                    rl.clip_high, rl.loss_agg, None if ref is None else ref[rows], rl.kl_beta, norm_len,
                )  # fmt: skip
                weight = float(agg_units(mask[rows], rl.loss_agg)) / total_units if real else 0.0
                updater.backward(loss * weight)
            if real:
                tokens = mask[rows].sum()
                sums[:3] += torch.stack(
                    [loss.detach() * weight, stats["clip_frac"] * tokens, stats["kl"] * tokens]
                )
                if ent is not None:
                    sums[4] += (ent * mask[rows]).sum()
                    sums[6] += tokens
        sums[3] += updater.step()
    sums = distributed.all_reduce_sum(sums)
    epochs, tokens = max(epochs, 1), max(float(sums[5]), 1.0)
    return {
        "loss": float(sums[0]) / epochs,
        "clip_frac": float(sums[1]) / tokens / epochs,
        "kl": float(sums[2]) / tokens / epochs if ref is not None else None,
        "grad_norm": float(sums[3]) / updater.world / epochs,
        "entropy": float(sums[4]) / max(float(sums[6]), 1.0),
        "lr": lr,  # of this step's first optimiser step
        "time_logprobs": logprob_s,
        "time_update": time.perf_counter() - start - logprob_s,
    }
