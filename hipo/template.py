"""The HiPO response format (docs/algorithm.md §1): render, parse, special tokens, chat template, spans.

Pure functions on strings and tensors. A response looks like::

    <judge>
    why this query does or does not need explicit reasoning
    </judge>
    <think_on>
    <think>
    step-by-step reasoning
    </think>
    <answer>
    final answer
    </answer>

Think-off is the same with ``<think_off>`` and no think block. Every tag is one token, so the mode
decision is exactly one sampled token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tokenizers import AddedToken

Mode = Literal["on", "off"]
ForcedMode = Literal["auto", "on", "off"]

JUDGE_OPEN, JUDGE_CLOSE = "<judge>", "</judge>"
THINK_ON, THINK_OFF = "<think_on>", "<think_off>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>"

MODE_TAGS: dict[Mode, str] = {"on": THINK_ON, "off": THINK_OFF}
HIPO_TAGS = (JUDGE_OPEN, JUDGE_CLOSE, THINK_ON, THINK_OFF, THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

_TAG_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in (*HIPO_TAGS, TURN_END)) + ")")
_MODE_BY_TAG: dict[str, Mode] = {THINK_ON: "on", THINK_OFF: "off"}


def prefill(mode: Mode, judge: str = "") -> str:
    """The start of a response up to and including the mode tag: prefilling it forces that mode."""
    return f"{JUDGE_OPEN}\n{judge.strip()}\n{JUDGE_CLOSE}\n{MODE_TAGS[mode]}\n"


def render(mode: Mode, judge: str, answer: str, think: str | None = None) -> str:
    """The full response text. A think block is required for Think-on and refused for Think-off."""
    if mode not in MODE_TAGS:
        raise ValueError(f"mode must be 'on' or 'off', got {mode!r}")
    if (mode == "on") != (think is not None):
        raise ValueError("a think block is required for mode 'on' and not allowed for mode 'off'")
    for name, text in (("judge", judge), ("answer", answer), ("think", think or "")):
        if _TAG_SPLIT.search(text):
            raise ValueError(f"{name} text must not contain HiPO tags: {text!r}")
    body = f"{THINK_OPEN}\n{think.strip()}\n{THINK_CLOSE}\n" if think is not None else ""
    return f"{prefill(mode, judge)}{body}{ANSWER_OPEN}\n{answer.strip()}\n{ANSWER_CLOSE}"


@dataclass(frozen=True)
class ParsedResponse:
    """What a response says. Fields are best effort even when ``format_ok`` is False."""

    mode: Mode | None
    judge: str | None
    think: str | None
    answer: str | None
    format_ok: bool
    judge_end: int | None  # character offset just past the first mode tag
    problems: tuple[str, ...]


def _block(pieces: list[str], open_tag: str, close_tag: str) -> str | None:
    """Text between the first ``open_tag`` and the next ``close_tag`` right after it."""
    for i, piece in enumerate(pieces):
        if piece == open_tag:
            if i + 2 < len(pieces) and pieces[i + 2] == close_tag:
                return pieces[i + 1].strip()
            return None
    return None


# The one accepted tag sequence per mode; an optional end-of-turn marker may follow.
_EXPECTED: dict[Mode, tuple[str, ...]] = {
    "on": (JUDGE_OPEN, JUDGE_CLOSE, THINK_ON, THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE),
    "off": (JUDGE_OPEN, JUDGE_CLOSE, THINK_OFF, ANSWER_OPEN, ANSWER_CLOSE),
}
# Tags after which the text up to the next tag is content; after any other tag it must be blank.
_CONTENT_AFTER = {JUDGE_OPEN, THINK_OPEN, ANSWER_OPEN}


def _structure_problems(pieces: list[str], mode: Mode | None) -> list[str]:
    tags = pieces[1::2]
    texts = pieces[0::2]
    if tags and tags[-1] == TURN_END and texts[-1].strip() == "":
        tags, texts = tags[:-1], texts[:-1]
    problems = []
    for tag in HIPO_TAGS:
        count = tags.count(tag)
        if count > 1:
            problems.append(f"{tag} appears {count} times")
    if mode is None:
        problems.append("no mode tag (<think_on> or <think_off>)")
    elif THINK_ON in tags and THINK_OFF in tags:
        problems.append("both mode tags present")
    elif tuple(tags) != _EXPECTED[mode]:
        problems.append(f"tags out of order for mode {mode!r}: {' '.join(tags) or 'none'}")
    else:
        stray = [t for t, before in zip(texts, (None, *tags), strict=True) if before not in _CONTENT_AFTER]
        if any(s.strip() for s in stray):
            problems.append("text outside the judge, think and answer blocks")
    return problems


def parse(text: Any) -> ParsedResponse:
    """Parse a response; never raises. Tolerant of whitespace, strict on structure."""
    if not isinstance(text, str):
        return ParsedResponse(None, None, None, None, False, None, (f"not a string: {type(text).__name__}",))
    pieces = _TAG_SPLIT.split(text)
    mode: Mode | None = None
    judge_end: int | None = None
    offset = 0
    for piece in pieces:
        offset += len(piece)
        if piece in _MODE_BY_TAG:
            mode, judge_end = _MODE_BY_TAG[piece], offset
            break
    problems = _structure_problems(pieces, mode)
    return ParsedResponse(
        mode=mode,
        judge=_block(pieces, JUDGE_OPEN, JUDGE_CLOSE),
        think=_block(pieces, THINK_OPEN, THINK_CLOSE),
        answer=_block(pieces, ANSWER_OPEN, ANSWER_CLOSE),
        format_ok=not problems,
        judge_end=judge_end,
        problems=tuple(problems),
    )


# ---------------------------------------------------------------- tokenizer side

CHAT_TEMPLATE = (
    "{%- for m in messages %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if mode is defined and mode in ['on', 'off'] %}"
    "{{- '<judge>\\n' + ((judge if judge is defined else '') | trim) + '\\n</judge>\\n' }}"
    "{{- '<think_on>\\n' if mode == 'on' else '<think_off>\\n' }}"
    "{%- endif %}{%- endif %}"
)


@dataclass(frozen=True)
class HipoTokenIds:
    """Token ids of the tags in one tokenizer."""

    judge_open: int
    judge_close: int
    think_on: int
    think_off: int
    think_open: int
    think_close: int
    answer_open: int
    answer_close: int
    turn_end: int


def add_hipo_tokens(tokenizer: Any) -> HipoTokenIds:
    """Make every tag one token and install the HiPO chat template; returns the tag ids.

    The tags are added as ordinary (non-special) tokens so that decoding with
    ``skip_special_tokens=True`` drops padding and end-of-turn markers but keeps the tags that
    ``parse`` needs; the turn markers are special. The caller resizes the model's embeddings to
    ``len(tokenizer)``. Prompting: ``apply_chat_template(msgs, add_generation_prompt=True,
    mode="auto" | "on" | "off")``.
    """
    vocab = tokenizer.get_vocab()
    tags = [AddedToken(t, special=False, normalized=False) for t in HIPO_TAGS if t not in vocab]
    if tags:
        tokenizer.add_tokens(tags)
    markers = [t for t in (TURN_START, TURN_END) if t not in vocab]
    if markers:
        tokenizer.add_special_tokens({"extra_special_tokens": markers}, replace_extra_special_tokens=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = TURN_END
    if tokenizer.pad_token is None:
        tokenizer.pad_token = TURN_END
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (*HIPO_TAGS, TURN_END)]
    for tag, token_id in zip((*HIPO_TAGS, TURN_END), ids, strict=True):
        if tokenizer.encode(tag, add_special_tokens=False) != [token_id]:
            raise ValueError(f"tokenizer does not encode {tag} as a single token")
    return HipoTokenIds(*ids)


def judge_span_lengths(response_ids: torch.Tensor, mask: torch.Tensor, ids: HipoTokenIds) -> torch.Tensor:
    """Per response, the number of tokens from the first response token through the first mode tag.

    ``response_ids`` and ``mask`` have shape [..., T]; the result has shape [...], 0 where a response
    has no mode tag (its tokens then all belong to the answer span).
    """
    is_mode = ((response_ids == ids.think_on) | (response_ids == ids.think_off)) & mask.bool()
    positions = torch.arange(response_ids.shape[-1], device=response_ids.device)
    first = torch.where(is_mode, positions, response_ids.shape[-1]).amin(dim=-1)
    return torch.where(is_mode.any(dim=-1), first + 1, torch.zeros_like(first))


def token_modes(response_ids: torch.Tensor, mask: torch.Tensor, ids: HipoTokenIds) -> torch.Tensor:
    """Per response, the mode chosen by the first mode tag: 1 on, 0 off, -1 none (algorithm.py codes)."""
    lengths = judge_span_lengths(response_ids, mask, ids)
    index = (lengths - 1).clamp(min=0).unsqueeze(-1)
    tag = response_ids.gather(-1, index).squeeze(-1)
    on = torch.where(tag == ids.think_on, 1, 0)
    return torch.where(lengths > 0, on, torch.full_like(on, -1))
