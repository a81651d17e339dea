"""Judge rationales: the request a writer answers, and the templated writer of offline runs.

A rationale says why a query does or does not need step-by-step reasoning (docs/algorithm.md §2.6)
and must never reveal the answer. The model-written rationales of the data pipeline are in
hipo/data/rationale.py; the templated writer lives here, beside the scripted teacher, because the
tiny model's tokenizer is trained on its text too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from hipo.template import Mode


@dataclass(frozen=True)
class RationaleRequest:
    query_id: str
    prompt: str
    mode: Mode
    p_on: float
    p_off: float
    samples_per_mode: int
    answer: str  # only used to check for leaks, never shown to the writer


class RationaleWriter(Protocol):
    name: str

    def write(self, requests: list[RationaleRequest]) -> list[str]: ...


def leaks_answer(rationale: str, answer: str) -> bool:
    """True when the answer appears in the rationale as a standalone token (numbers not inside others)."""
    answer = answer.strip()
    if not answer:
        return False
    pattern = r"(?<![\w.])" + re.escape(answer) + r"(?![\w%]|\.\d)"  # "100%" is a rate, not 100
    return re.search(pattern, rationale) is not None


class TemplateRationaleWriter:
    """Offline rationales composed from the pass-rate evidence; they never mention the answer."""

    name = "template"

    def write(self, requests: list[RationaleRequest]) -> list[str]:
        return [self.one(r) for r in requests]

    @staticmethod
    def one(r: RationaleRequest) -> str:
        """One word, the verdict the pass rates support. At small scale every judge token is paid in both
        modes and a longer text would outweigh the reasoning it judges; the digits of the rates (noise
        from 8 samples) also cost a tiny model most of its SFT loss."""
        return "easy" if r.mode == "off" else "hard"
