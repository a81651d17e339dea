"""Engines for evaluation tests: a table of fixed responses, and a fault injector around a real engine."""

from __future__ import annotations

from collections.abc import Sequence

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import Completion, Engine


class TableEngine:
    """Answers each (prompt, forced mode) with a fixed text of a fixed token count; records the judge
    text each forced prompt was given."""

    name = "table"

    def __init__(self, table: dict[tuple[str, str], tuple[str, int]]) -> None:
        self.table = table
        self.judges: dict[tuple[str, str], str] = {}

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        if judges is not None:
            self.judges.update({(p, forced_mode): j for p, j in zip(prompts, judges, strict=True)})
        out = []
        for prompt in prompts:
            text, tokens = self.table[(prompt, forced_mode)]
            out.append([Completion(text, token_ids=(0,) * tokens, finish_reason="stop")] * n)
        return out


class FaultyEngine:
    """Passes calls to ``inner`` and raises after ``fail_after`` successful calls (None: never);
    records every prompt it was asked for, with the forced mode."""

    def __init__(self, inner: Engine, fail_after: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.fail_after = fail_after
        self.calls = 0
        self.asked: list[tuple[str, str]] = []

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError(f"injected fault after {self.calls} batches")
        self.calls += 1
        self.asked += [(p, forced_mode) for p in prompts]
        return self.inner.generate(prompts, n, sampling, forced_mode, judges)
