"""Generation with a transformers causal LM: batched, left padded, KV cache, HiPO chat template.

The decoding loop is this module's own rather than transformers' ``generate``: per token it runs one
forward with the reused KV cache and samples with a few tensor ops, and rows that have stopped leave
the batch (and the cache), so a batch costs what its live rows cost. Equal rows (the n samples of a
prompt) share one prefill: the prompt runs once and its cache is copied to each of them. On a small
model on CPU the per-token overhead of ``generate`` (input preparation, stopping criteria, logits
processors) and ``torch.multinomial`` was most of the rollout time (docs/speed.md).

Sampling: temperature, then top-p (smallest set of most likely tokens whose probability reaches
top_p), then one uniform number per row mapped through the cumulative distribution (an exact draw,
cheaper per token than ``torch.multinomial``); greedy takes the argmax of the raw logits.

Log-probs: for each generated token, ``log_softmax`` of the model's raw logits at that step, i.e. the
distribution at temperature 1 without top-p — vLLM's default ("raw_logprobs") and what a trainer
recomputes as π_old.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import Completion, EngineError
from hipo.engines.prompting import chat_prompt, is_greedy, judges_for, stop_token_ids


def next_tokens(logits: Tensor, sampling: SamplingConfig, generator: torch.Generator) -> Tensor:
    """One token per row of ``logits`` [rows, vocab], drawn as the module docstring says."""
    if is_greedy(sampling):
        return logits.argmax(-1)
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        beyond = sorted_p.cumsum(-1) - sorted_p >= sampling.top_p  # the most likely token always stays
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p.masked_fill(beyond, 0.0))
    cdf = probs.cumsum(-1)
    # u in [0, total): the first token whose cumulative probability exceeds u; a token of probability
    # 0 has an empty interval and is never drawn
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)


@dataclass(frozen=True)
class Sampled:
    """What ``sample`` generated: tokens [rows, max_new_tokens] (pad after a row's end), each row's
    length (its stop token included), whether it stopped, and log-probs like ``tokens`` (or None)."""

    tokens: Tensor
    lengths: list[int]
    stopped: list[bool]
    logprobs: Tensor | None


@torch.inference_mode()
def sample(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    sampling: SamplingConfig,
    stop_ids: Sequence[int],
    pad_id: int,
    generator: torch.Generator,
    logprobs: bool = True,
) -> Sampled:
    """Decode up to ``sampling.max_new_tokens`` tokens after each left-padded row of ``input_ids``."""
    rows, steps, device = input_ids.shape[0], sampling.max_new_tokens, input_ids.device
    tokens = torch.full((rows, steps), pad_id, dtype=torch.long, device=device)
    taken = torch.zeros((rows, steps), device=device) if logprobs else None
    lengths = torch.full((rows,), steps, dtype=torch.long)
    stopped = torch.zeros(rows, dtype=torch.bool)
    stops = torch.tensor(sorted(set(stop_ids)), device=device)
    live = torch.arange(rows, device=device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    # the n samples of a prompt are n equal rows: the prompt runs once, its cache is copied to them
    width = input_ids.shape[1]
    prompts, prompt_of = torch.unique(torch.cat([input_ids, attention_mask], -1), dim=0, return_inverse=True)
    out = model(
        input_ids=prompts[:, :width],
        attention_mask=prompts[:, width:],
        position_ids=(prompts[:, width:].cumsum(-1) - 1).clamp(min=0),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[prompt_of, -1].float()
    if not torch.equal(prompt_of, live):  # unique rows come sorted: back to the batch's order
        cache.batch_select_indices(prompt_of)
    mask, position = attention_mask, positions[:, -1:]
    for step in range(steps):
        token = next_tokens(logits, sampling, generator)
        tokens[live, step] = token
        if taken is not None:
            taken[live, step] = torch.log_softmax(logits, -1).gather(-1, token[:, None]).squeeze(-1)
        done = torch.isin(token, stops)
        if bool(done.any()):
            ended = live[done].cpu()
            lengths[ended], stopped[ended] = step + 1, True
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            live, token, mask, position = live[keep], token[keep], mask[keep], position[keep]
        if step == steps - 1:
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        position = position + 1
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=position,
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1].float()
    return Sampled(
        tokens.cpu(), lengths.tolist(), stopped.tolist(), taken.cpu() if taken is not None else None
    )


class HFEngine:
    """A causal LM from a local directory (or in memory, with its tokenizer) behind the engine interface.

    An in-memory model is used as it is: moved to ``device`` and put in eval mode (a trainer that
    shares it switches it back with ``model.train()``).

    ``seed`` seeds a generator that draws one torch seed per batch (the global torch RNG is not
    used), so the same engine seed and the same calls give the same samples. ``logprobs=False``
    leaves ``Completion.logprobs`` None (RL rollouts do not read them).
    """

    def __init__(
        self,
        model_dir_or_model: str | Path | Any,
        tokenizer: Any = None,
        batch_size: int = 32,
        device: str = "cpu",
        seed: int = 0,
        logprobs: bool = True,
    ) -> None:
        if isinstance(model_dir_or_model, str | Path):
            path = Path(model_dir_or_model)
            if not (path / "config.json").is_file():
                raise EngineError(
                    f"hf engine: {path} is not a model directory (no config.json): pass a directory "
                    "written by save_pretrained"
                )
            model = AutoModelForCausalLM.from_pretrained(path)
            tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
            self.name = f"hf:{path}"
        else:
            if tokenizer is None:
                raise EngineError("hf engine: pass the tokenizer together with an in-memory model")
            model = model_dir_or_model
            self.name = f"hf:{getattr(model.config, 'name_or_path', '') or type(model).__name__}"
        if batch_size < 1:
            raise EngineError(f"hf engine: batch_size must be >= 1, got {batch_size}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._stop_ids = stop_token_ids(tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._stop_ids[0]
        self._rng = random.Random(seed)
        self.logprobs = logprobs

    def _encode(
        self, prompt: str, forced_mode: template.ForcedMode, judge: str
    ) -> tuple[list[int], list[int], str]:
        base, prefill = chat_prompt(self.tokenizer, prompt, forced_mode, judge)
        encode = self.tokenizer.encode
        return encode(base, add_special_tokens=False), encode(prefill, add_special_tokens=False), prefill

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        if n < 1:
            raise EngineError(f"n must be >= 1, got {n}")
        judges = judges_for(prompts, judges)
        encoded = [self._encode(p, forced_mode, j) for p, j in zip(prompts, judges, strict=True)]
        rows = [encoded[i] for i in range(len(prompts)) for _ in range(n)]
        flat: list[Completion] = []
        for start in range(0, len(rows), self.batch_size):
            flat.extend(self._generate_batch(rows[start : start + self.batch_size], sampling))
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _generate_batch(
        self, batch: list[tuple[list[int], list[int], str]], sampling: SamplingConfig
    ) -> list[Completion]:
        width = max(len(base) + len(prefill) for base, prefill, _ in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (base, prefill, _) in enumerate(batch):
            ids = base + prefill
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        device = self.model.device
        generator = torch.Generator(device=device).manual_seed(self._rng.randrange(2**63))
        args = (input_ids.to(device), attention.to(device), sampling, self._stop_ids, self._pad_id)
        out = sample(self.model, *args, generator, self.logprobs)
        completions = []
        for row, (_, prefill_ids, prefill_text) in enumerate(batch):
            tokens = out.tokens[row, : out.lengths[row]].tolist()
            logprobs = out.logprobs[row, : len(tokens)].tolist() if out.logprobs is not None else None
            completions.append(
                Completion(
                    text=prefill_text + self.tokenizer.decode(tokens, skip_special_tokens=True),
                    token_ids=tuple(prefill_ids + tokens),
                    logprobs=tuple(logprobs) if logprobs is not None else None,
                    finish_reason="stop" if out.stopped[row] else "length",
                )
            )
        return completions
