"""Shared by the tokenizer-based engines (hf, vllm): chat prompts with forced-mode prefill, stop tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import EngineError


def is_greedy(sampling: SamplingConfig) -> bool:
    return sampling.greedy or sampling.temperature == 0.0


def chat_prompt(
    tokenizer: Any, prompt: str, forced_mode: template.ForcedMode, judge: str = ""
) -> tuple[str, str]:
    """(text up to the generation prompt, prefill text) for one user prompt, both from the chat template.

    The prefill is what the HiPO template adds for ``mode="on"|"off"`` (template.add_hipo_tokens); it is
    returned apart so that engines can report its tokens and prepend it to the response text. ``judge``
    is the judge text the prefill carries.
    """
    if forced_mode not in ("auto", "on", "off"):
        raise EngineError(f"forced_mode must be 'auto', 'on' or 'off', got {forced_mode!r}")
    messages = [{"role": "user", "content": prompt}]
    base = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if forced_mode == "auto":
        return base, ""
    full = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, mode=forced_mode, judge=judge
    )
    if full == base or not full.startswith(base):
        raise EngineError(
            f"the tokenizer's chat template cannot force mode {forced_mode!r}: install the HiPO template "
            "with hipo.template.add_hipo_tokens(tokenizer) (and resize the model's embeddings)"
        )
    return base, full[len(base) :]


def judges_for(prompts: Sequence[str], judges: Sequence[str] | None) -> list[str]:
    """One judge text per prompt for forced prefills: ``judges`` checked for length, or all empty."""
    if judges is None:
        return [""] * len(prompts)
    if len(judges) != len(prompts):
        raise EngineError(f"judges must have one text per prompt: {len(judges)} for {len(prompts)} prompts")
    return list(judges)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """End of turn, ``</answer>`` and the tokenizer's eos: each must be a single token to count."""
    ids: list[int] = []
    for token in (template.TURN_END, template.ANSWER_CLOSE):
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(encoded[0])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise EngineError(
            "the tokenizer has no single-token end of turn: call hipo.template.add_hipo_tokens(tokenizer)"
        )
    return ids
