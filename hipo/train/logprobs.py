"""Per-token log-probs (and entropies) of response tokens under a causal LM.

Rows are laid out as in hipo.train.rollout: prompt left-padded to ``prompt_width``, response after it.
Position ids count real tokens only, as generation does, so left padding does not shift positions.

Shared prompts: the G rollouts of a group repeat one prompt. With ``share_prompts`` the rows of one
prompt are packed into a single sequence, the prompt once and every response after it, and a 4D
attention mask lets each response see the prompt and its own earlier tokens only, with positions
continuing from the prompt's as in its own row. Every response token then has the same context as
in the plain layout, so log-probs and gradients are the same up to float rounding, and the forward
and backward run the prompt once per group instead of G times (and no padding between responses).
The packed sequences are longer, and attention grows with the square of the length: rows are packed
only where that costs fewer FLOPs, counted as about 24·d² a token in the linear layers and 4·d a
query-key pair in attention (d the hidden size). Short responses after a long prompt gain (SmolLM2's
RL case); long ones, or a model as narrow as the tiny test model, stay plain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def trimmed(input_ids: Tensor, attention_mask: Tensor, prompt_width: int) -> tuple[Tensor, Tensor, int]:
    """Drop columns that are padding in every row: (input_ids, attention_mask, new prompt width)."""
    prompt_len = attention_mask[:, :prompt_width].sum(-1).max().item()
    response_len = max(1, attention_mask[:, prompt_width:].sum(-1).max().item())
    start, end = prompt_width - prompt_len, prompt_width + response_len
    return input_ids[:, start:end], attention_mask[:, start:end], prompt_len


def shares_prompts(model: Any) -> int:
    """What ``response_logprobs`` takes as ``share_prompts`` for ``model`` (a bare transformers model):
    its hidden size if its attention is torch's SDPA (the transformers default on CPU and GPU), which
    takes the packed layout's 4D boolean mask as it is, over every past token (no sliding-window
    layer, which the mask would override); else 0, never packed."""
    config = getattr(model, "config", None)
    sdpa = getattr(config, "_attn_implementation", None) == "sdpa"
    windowed = "sliding_attention" in (getattr(config, "layer_types", None) or ())
    return int(getattr(config, "hidden_size", 0)) if sdpa and not windowed else 0


@dataclass(frozen=True)
class Packed:
    """Rows packed by prompt (module docstring): U sequences of the prompt then its rows' responses."""

    input_ids: Tensor  # [U, width_p + W]
    attention_mask: Tensor  # [U, 1, width, width] bool: query attends key
    position_ids: Tensor  # [U, width]
    sequence: Tensor  # [N]: the packed sequence of each row
    logit_index: Tensor  # [N, T]: the kept logit (columns width_p - 1 ...) that predicts token j


def pack_by_prompt(ids: Tensor, mask: Tensor, width_p: int, hidden: int) -> Packed | None:
    """Trimmed rows ``ids`` / ``mask`` [N, width_p + T] packed by prompt; None if no two share one or
    packing would not cost fewer FLOPs for a model of hidden size ``hidden`` (module docstring)."""
    key = torch.cat([ids[:, :width_p], mask[:, :width_p]], dim=-1)
    prompts, sequence = torch.unique(key, dim=0, return_inverse=True)
    rows, width_t = ids.shape[0], ids.shape[1] - width_p
    if len(prompts) == rows:
        return None
    lengths = mask[:, width_p:].sum(-1)
    same = sequence[:, None] == sequence[None, :]
    offset = (torch.tril(same, -1) * lengths[None, :]).sum(-1)  # response tokens of earlier rows
    totals = torch.zeros(len(prompts), dtype=lengths.dtype, device=ids.device)
    width = width_p + int(totals.index_add_(0, sequence, lengths).max())
    if len(prompts) * width * (6 * hidden + width) >= rows * ids.shape[1] * (6 * hidden + ids.shape[1]):
        return None
    j = torch.arange(width_t, device=ids.device)
    real = j[None, :] < lengths[:, None]
    at_seq, at_col = sequence[:, None].expand(rows, width_t)[real], (width_p + offset[:, None] + j)[real]
    packed_ids = torch.zeros((len(prompts), width), dtype=ids.dtype, device=ids.device)
    packed_ids[:, :width_p] = prompts[:, :width_p]
    packed_ids[at_seq, at_col] = ids[:, width_p:][real]
    # segment of each column: -1 a real prompt token, r row r's response, -2 padding
    segment = torch.full_like(packed_ids, -2)
    segment[:, :width_p] = torch.where(prompts[:, width_p:].bool(), -1, -2)
    segment[at_seq, at_col] = torch.arange(rows, device=ids.device)[:, None].expand(rows, width_t)[real]
    prompt_len = prompts[:, width_p:].sum(-1)
    positions = (prompts[:, width_p:].cumsum(-1) - 1).clamp(min=0)
    response_pos = torch.zeros_like(packed_ids)
    response_pos[at_seq, at_col] = (prompt_len[sequence][:, None] + j)[real]
    positions = torch.cat([positions, response_pos[:, width_p:]], dim=-1)
    query, keys = segment[:, :, None], segment[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
    sees = ((keys == -1) & (query != -2)) | ((keys == query) & (query >= 0))
    # a padding column sees itself only: no row of the mask is empty (no NaN from SDPA)
    attend = (sees & causal) | torch.eye(width, dtype=torch.bool, device=ids.device)
    # the kept logits start at the prompt's last column: token 0 reads that one, token j > 0 the
    # column before it in its own segment
    index = torch.where(real & (j > 0), offset[:, None] + j, 0)
    return Packed(packed_ids, attend[:, None], positions, sequence, index)


def response_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_width: int,
    entropy: bool = False,
    share_prompts: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """(log-probs [N, T], entropies [N, T] or None) of the response tokens, T = width - prompt_width,
    0 at padding. ``share_prompts``: ``shares_prompts(model)``, to run rows with the same prompt packed
    where that costs less (module docstring); 0 never packs.

    Runs with or without autograd, as the caller's context says. Entropy is computed without grad.
    """
    ids, mask, width_p = trimmed(input_ids, attention_mask, prompt_width)
    packed = pack_by_prompt(ids, mask, width_p, share_prompts) if share_prompts else None
    if packed is None:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = ids.shape[1] - width_p + 1  # the lm head runs on the response positions only
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep)
        logits = out.logits[:, :-1].float()
    else:
        keep = packed.input_ids.shape[1] - width_p + 1
        out = model(
            input_ids=packed.input_ids,
            attention_mask=packed.attention_mask,
            position_ids=packed.position_ids,
            logits_to_keep=keep,
        )
        logits = out.logits.float()
    logp_all = torch.log_softmax(logits, dim=-1)
    ent_all = None
    if entropy:
        with torch.no_grad():
            ent_all = -(logp_all.exp() * logp_all).sum(-1)
    tokens, real = ids[:, width_p:], mask[:, width_p:].bool()
    if packed is None:
        logp = logp_all.gather(-1, tokens[:, :, None]).squeeze(-1)
        ent = ent_all
    else:
        where = (packed.sequence[:, None].expand_as(tokens), packed.logit_index)
        logp = logp_all[(*where, tokens)]
        ent = ent_all[where] if ent_all is not None else None
    logp = torch.where(real, logp, 0.0)
    full_t = input_ids.shape[1] - prompt_width
    if ent is not None:
        ent = _pad_right(torch.where(real, ent, 0.0), full_t)
    return _pad_right(logp, full_t), ent


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
    share_prompts: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """``response_logprobs`` over micro-batches of ``size`` rows, concatenated (a batch may be empty).

    ``passes``: run at least that many forwards, repeating the first row with the results dropped, so
    every rank runs as many as the others (ZeRO-3 gathers the weights collectively in each forward).
    """
    empty = torch.zeros((0, input_ids.shape[1] - prompt_width), device=input_ids.device)
    slices = list(micro_batches(input_ids.shape[0], size))
    parts = [(empty, empty)] + [
        response_logprobs(model, input_ids[rows], attention_mask[rows], prompt_width, entropy, share_prompts)
        for rows in slices
    ]
    for _ in range(passes - len(slices)):
        response_logprobs(model, input_ids[:1], attention_mask[:1], prompt_width)
    logp = torch.cat([p[0] for p in parts])
    return logp, (torch.cat([p[1] for p in parts]) if entropy else None)
