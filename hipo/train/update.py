"""One policy update from a batch of rollouts (§6): π_old and reference log-probs, then ``ppo_epochs``
passes over micro-batches, each pass one optimiser step over the whole global batch.

Every micro-batch loss is weighted by its share of the global aggregation units (tokens, non-empty
sequences or sequences, per ``loss_agg``), and gradients are averaged over ranks, so the step equals
one step on the global batch in a single process. The model stays in eval mode: with dropout off the
PPO ratio is exactly 1 on the first pass.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from hipo.config import RLConfig
from hipo.train import algorithm as alg
from hipo.train import distributed
from hipo.train.logprobs import batch_logprobs, micro_batches, response_logprobs
from hipo.train.rollout import RolloutBatch


def agg_units(mask: Tensor, agg: alg.LossAgg) -> Tensor:
    """How many units ``alg.aggregate`` averages over in ``mask`` [N, T]."""
    if agg == "token_mean":
        return mask.sum()
    if agg == "seq_mean_token_mean":
        return mask.any(-1).sum()
    return torch.tensor(mask.shape[0], device=mask.device)


def _average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Mean of the gradients over ranks, one flat all-reduce (missing gradients count as zero)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = distributed.all_reduce_mean(torch.cat([g.reshape(-1) for g in grads]))
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def policy_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: RolloutBatch,
    rl: RLConfig,
    norm_len: int,
    ref_model: Any = None,
) -> dict[str, float]:
    """Update ``model`` in place from this rank's ``batch``; returns globally reduced stats and timings."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    size, mask = rl.optim.micro_batch_size, batch.response_mask
    args = (batch.input_ids, batch.attention_mask, batch.prompt_width, size)
    lr, start = optimizer.param_groups[0]["lr"], time.perf_counter()
    old, entropy = batch_logprobs(model, *args, entropy=True)
    ref = batch_logprobs(ref_model, *args)[0] if ref_model is not None else None
    logprob_s = time.perf_counter() - start
    mean_units = distributed.all_reduce_mean(agg_units(mask, rl.loss_agg).double())
    params = [p for p in model.parameters() if p.requires_grad]
    sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss, clip, kl, grad norm, entropy, tokens
    sums[4], sums[5] = (entropy * mask).sum(), mask.sum()
    epochs = rl.ppo_epochs if float(mean_units) > 0 else 0  # nothing to learn from: no step at all
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        for rows in micro_batches(mask.shape[0], size):
            ids, attention = batch.input_ids[rows], batch.attention_mask[rows]
            logp, _ = response_logprobs(model, ids, attention, batch.prompt_width)
            loss, stats = alg.policy_loss(
                logp, old[rows], batch.advantages[rows], mask[rows], rl.clip_low, rl.clip_high,
                rl.loss_agg, None if ref is None else ref[rows], rl.kl_beta, norm_len,
            )  # fmt: skip
            weighted = loss * float(agg_units(mask[rows], rl.loss_agg) / mean_units)
            weighted.backward()
            tokens = mask[rows].sum()
            sums[:3] += torch.stack(
                [weighted.detach(), stats["clip_frac"] * tokens, stats["kl"] * tokens]
            ).double()
        _average_gradients(params)
        sums[3] += torch.nn.utils.clip_grad_norm_(params, rl.optim.max_grad_norm).double()
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    sums = distributed.all_reduce_mean(sums)
    epochs, tokens = max(epochs, 1), max(float(sums[5]), 1.0)
    return {
        "loss": float(sums[0]) / epochs,
        "clip_frac": float(sums[1]) / tokens / epochs,
        "kl": float(sums[2]) / tokens / epochs if ref is not None else None,
        "grad_norm": float(sums[3]) / epochs,
        "entropy": float(sums[4]) / tokens,
        "lr": lr,  # of this step's first optimiser step
        "time_logprobs": logprob_s,
        "time_update": time.perf_counter() - start - logprob_s,
    }
