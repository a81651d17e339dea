"""Per-token log-probs (and entropies) of response tokens under a causal LM.

Rows are laid out as in hipo.train.rollout: prompt left-padded to ``prompt_width``, response after it.
Position ids count real tokens only, as generation does, so left padding does not shift positions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


def trimmed(input_ids: Tensor, attention_mask: Tensor, prompt_width: int) -> tuple[Tensor, Tensor, int]:
    """Drop columns that are padding in every row: (input_ids, attention_mask, new prompt width)."""
    prompt_len = attention_mask[:, :prompt_width].sum(-1).max().item()
    response_len = max(1, attention_mask[:, prompt_width:].sum(-1).max().item())
    start, end = prompt_width - prompt_len, prompt_width + response_len
    return input_ids[:, start:end], attention_mask[:, start:end], prompt_len


def response_logprobs(
    model: Any, input_ids: Tensor, attention_mask: Tensor, prompt_width: int, entropy: bool = False
) -> tuple[Tensor, Tensor | None]:
    """(log-probs [N, T], entropies [N, T] or None) of the response tokens, T = width - prompt_width.

    Runs with or without autograd, as the caller's context says. Entropy is computed without grad.
    """
    ids, mask, width_p = trimmed(input_ids, attention_mask, prompt_width)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = ids.shape[1] - width_p + 1  # the lm head runs on the response positions only
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep)
    logits = out.logits[:, :-1].float()
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, ids[:, width_p:, None]).squeeze(-1)
    ent = None
    if entropy:
        with torch.no_grad():
            ent = -(logp_all.exp() * logp_all).sum(-1)
    full_t = input_ids.shape[1] - prompt_width
    return _pad_right(logp, full_t), (_pad_right(ent, full_t) if ent is not None else None)


def _pad_right(values: Tensor, width: int) -> Tensor:
    return torch.nn.functional.pad(values, (0, width - values.shape[1]))


def micro_batches(n: int, size: int) -> Iterator[slice]:
    """Consecutive row slices of at most ``size`` rows."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def batch_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_width: int,
    size: int,
    entropy: bool = False,
    passes: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """``response_logprobs`` over micro-batches of ``size`` rows, concatenated (a batch may be empty).

    ``passes``: run at least that many forwards, repeating the first row with the results dropped, so
    every rank runs as many as the others (ZeRO-3 gathers the weights collectively in each forward).
    """
    empty = torch.zeros((0, input_ids.shape[1] - prompt_width), device=input_ids.device)
    slices = list(micro_batches(input_ids.shape[0], size))
    parts = [(empty, empty)] + [
        response_logprobs(model, input_ids[rows], attention_mask[rows], prompt_width, entropy)
        for rows in slices
    ]
    for _ in range(passes - len(slices)):
        response_logprobs(model, input_ids[:1], attention_mask[:1], prompt_width)
    logp = torch.cat([p[0] for p in parts])
    return logp, (torch.cat([p[1] for p in parts]) if entropy else None)
