"""Mode choice for one query from its verified teacher samples (docs/algorithm.md §2, steps 2–5).

Pure: samples in, a choice (or the reason the query is dropped) out.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

from hipo.config import DataConfig
from hipo.template import Mode

Bucket = Literal["easy", "medium", "hard"]
_TOLERANCE = 1e-9  # pass rates are k/N: compare against δ without float noise


@dataclass(frozen=True)
class Sample:
    """One teacher response in a forced mode, verified."""

    text: str
    correct: bool
    num_tokens: int


@dataclass(frozen=True)
class Choice:
    mode: Mode  # the mode of the kept response
    preferred: Mode  # the mode the pass rates prefer (the label for mode-choice accuracy)
    sample: Sample
    p_on: float
    p_off: float
    bucket: Bucket
    random_mode: bool  # the 1% random-mode rule decided the mode


def pass_rate(samples: list[Sample]) -> float:
    return sum(s.correct for s in samples) / len(samples) if samples else 0.0


def preferred_mode(p_on: float, p_off: float, delta: float) -> Mode:
    """Think-on only when it beats Think-off by more than δ; ties and near ties go to Think-off.

    docs/algorithm.md §2: with δ = 0.125 "think-on must win by at least two of eight", so a gap of
    exactly δ (one of eight) is a near tie.
    """
    return "on" if p_on - p_off > delta + _TOLERANCE else "off"


def bucket(p_off: float, config: DataConfig) -> Bucket:
    if p_off >= config.easy_p_off - _TOLERANCE:
        return "easy"
    if p_off < config.hard_p_off - _TOLERANCE:
        return "hard"
    return "medium"


def shortest_correct(samples: list[Sample]) -> Sample | None:
    """The correct sample with the fewest tokens (the first of equals, so the choice is stable)."""
    correct = [s for s in samples if s.correct]
    return min(correct, key=lambda s: s.num_tokens) if correct else None


def query_rng(seed: int, query_id: str) -> random.Random:
    """A generator per (seed, query): the same decision whatever order or run the query is processed in."""
    digest = hashlib.sha256(f"{seed}:{query_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose(query_id: str, on: list[Sample], off: list[Sample], config: DataConfig) -> Choice | None:
    """The response to keep for one query, or None when no sample in either mode is correct."""
    p_on, p_off = pass_rate(on), pass_rate(off)
    preferred = preferred_mode(p_on, p_off, config.delta)
    by_mode = {"on": shortest_correct(on), "off": shortest_correct(off)}
    mode: Mode = preferred if by_mode[preferred] else ("off" if preferred == "on" else "on")
    if by_mode[mode] is None:
        return None
    random_mode = False
    rng = query_rng(config.seed, query_id)
    if rng.random() < config.random_mode_rate:
        drawn: Mode = rng.choice(("on", "off"))
        if by_mode[drawn] is not None:
            mode, random_mode = drawn, True
    kept = by_mode[mode]
    assert kept is not None
    return Choice(mode, preferred, kept, p_on, p_off, bucket(p_off, config), random_mode)
