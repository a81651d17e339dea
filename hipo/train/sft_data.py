"""SFT examples: chat-template tokenisation with assistant-only labels, padding, balanced shuffled batches."""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hipo import template
from hipo.storage.datasets import SPLIT_COLUMN, DatasetError, load_dataset

REQUIRED_COLUMNS = ("prompt", "response")
IGNORE = -100  # label of tokens that carry no loss


@dataclass(frozen=True)
class Example:
    ids: list[int]
    prompt_len: int  # tokens up to and including the generation prompt: no loss on them

    @property
    def n_labels(self) -> int:
        return len(self.ids) - self.prompt_len


def read_sft_dataset(dataset_dir: str | Path) -> dict[str, pd.DataFrame]:
    """{"train": frame, "eval": frame} with at least the prompt and response columns; train not empty."""
    frame = load_dataset(dataset_dir).frame
    missing = [c for c in REQUIRED_COLUMNS if c not in frame]
    if missing:
        raise DatasetError(
            f"dataset {dataset_dir} lacks column(s) {missing} in train and/or eval: SFT needs "
            f"{list(REQUIRED_COLUMNS)}"
        )
    splits = {s: frame[frame[SPLIT_COLUMN] == s].reset_index(drop=True) for s in ("train", "eval")}
    for split, part in splits.items():
        if part[list(REQUIRED_COLUMNS)].isna().any().any():
            raise DatasetError(f"dataset {dataset_dir}: {split} has empty prompt or response values")
    if splits["train"].empty:
        raise DatasetError(f"dataset {dataset_dir}: the train split has no rows")
    for split, part in splits.items():
        check_rows(dataset_dir, split, part)
    return splits


def check_rows(dataset_dir: str | Path, split: str, frame: pd.DataFrame) -> None:
    """Refuse rows SFT must not learn from: a prompt or response that is not text, a response that is
    not a well-formed HiPO response (judge span, one mode tag, think iff on, closed answer), or one
    whose mode tag differs from its ``mode`` column. The quality gate reports every row."""
    for column in REQUIRED_COLUMNS:
        if not pd.api.types.is_string_dtype(frame[column]) or not all(
            isinstance(v, str) for v in frame[column]
        ):
            raise DatasetError(f"dataset {dataset_dir}: {split} column {column!r} must hold text")
    bad = []
    for row, response in enumerate(frame["response"]):
        parsed = template.parse(response)
        mode = frame["mode"].iloc[row] if "mode" in frame else parsed.mode
        if not parsed.format_ok or parsed.mode != mode:
            bad.append((row, "; ".join(parsed.problems) or f"mode tag {parsed.mode!r}, mode column {mode!r}"))
    if bad:
        row, why = bad[0]
        raise DatasetError(
            f"dataset {dataset_dir}: {len(bad)} of {len(frame)} {split} rows are no well-formed HiPO "
            f"responses (first: row {row}: {why[:120]}); hipo data validate lists them all"
        )


def encode(tokenizer: Any, frame: pd.DataFrame) -> list[Example]:
    """User prompt through the generation prompt (no loss), then response + end of turn (loss)."""
    heads = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in frame["prompt"]
    ]
    tails = [r + template.TURN_END for r in frame["response"]]
    head_ids = tokenizer(heads, add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer(tails, add_special_tokens=False)["input_ids"]
    return [Example(h + t, len(h)) for h, t in zip(head_ids, tail_ids, strict=True)]


def collate(examples: Sequence[Example], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (IGNORE on the prompt and the padding)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        labels[row, e.prompt_len : len(e.ids)] = ids[row, e.prompt_len : len(e.ids)]
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def shuffled_batches(groups: Sequence[Hashable], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless global batches of row indices from shuffled epochs, the same on every rank for a seed.

    ``groups`` holds one key per row (e.g. its difficulty level, or one key for all rows). Each epoch
    draws every group equally often: a smaller group's rows repeat, each copy in a fresh order, up to
    the size of the largest. On the arithmetic ladder the easiest level has a fifth of the prompts of
    the others, and without this its direct answers were learnt worst.

    Batches are deliberately mixed: length-grouped batches (each one level and one mode) kept the tiny
    model from learning to read the operands for hundreds of steps. Padding stays low anyway, because
    each rank sorts its share into micro-batches by length (``micro_batches``).
    """
    rng = random.Random(seed)
    members: dict[Hashable, list[int]] = {}
    for row, key in enumerate(groups):
        members.setdefault(key, []).append(row)
    largest = max(map(len, members.values()), default=0)

    def epoch() -> list[int]:
        order: list[int] = []
        for rows in members.values():
            copies = [rng.sample(rows, len(rows)) for _ in range(-(-largest // len(rows)))]
            order.extend(itertools.islice(itertools.chain.from_iterable(copies), largest))
        rng.shuffle(order)
        return order

    stream = itertools.chain.from_iterable(epoch() for _ in itertools.count())
    while True:
        yield list(itertools.islice(stream, batch_size))


def micro_batches(indices: Sequence[int], lengths: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` sorted by length and cut into micro-batches of ``size``."""
    ordered = sorted(indices, key=lengths.__getitem__)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
