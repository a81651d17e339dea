"""Evaluation metrics (docs/algorithm.md §7) over per-sample rows, and the flat KFP-style metrics dict.

One row per (benchmark, pass, problem): pass "auto" lets the model choose its mode, "on"/"off" force it.
Over the rows of a group (a benchmark, optionally one difficulty, of one pass):

- ``accuracy``: share of correct answers (the task's extract + verify, as the RL reward's ACC);
- ``tokens``: mean response tokens (``Completion.num_tokens``, prefill included);
- ``think_rate``: share of responses whose (first) mode tag is Think-on (no mode tag counts as not on);
- ``format_fail_rate``: share with ``template.parse(...).format_ok`` False;
- ``accuracy_on`` / ``accuracy_off``, ``tokens_on`` / ``tokens_off``: the same over responses in that mode;
- ``mode_choice_accuracy``: share of labelled rows (the prompt has a preferred mode) whose mode matches;
- oracle (needs both forced passes): per query the better forced response — correct before wrong, then
  shorter, Think-off on ties — so ``accuracy`` counts a query correct if either mode got it right and
  ``tokens`` is the shorter correct one; its ``think_rate`` is the share where that is Think-on.

``n`` counts the rows, ``labelled`` those with a label. A metric over no rows is None (left out of
``flat_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

PASSES = ("auto", "on", "off")
COLUMNS = ("benchmark", "pass", "id", "prompt", "difficulty", "gold", "label", "mode", "format_ok",
           "correct", "tokens", "finish_reason", "answer", "text")  # fmt: skip
HEADLINE = ("accuracy", "tokens", "think_rate", "format_fail_rate", "mode_choice_accuracy")

Metrics = dict[str, float | None]


def _mean(values: pd.Series) -> float | None:
    return float(values.astype(float).mean()) if len(values) else None


def summarize(rows: pd.DataFrame) -> Metrics:
    """The metrics of one group of rows (one pass)."""
    on, off = rows["mode"] == "on", rows["mode"] == "off"
    labelled = rows["label"].notna()
    return {
        "n": float(len(rows)),
        "accuracy": _mean(rows["correct"]),
        "tokens": _mean(rows["tokens"]),
        "think_rate": _mean(on),
        "format_fail_rate": _mean(~rows["format_ok"].astype(bool)),
        "accuracy_on": _mean(rows["correct"][on]),
        "accuracy_off": _mean(rows["correct"][off]),
        "tokens_on": _mean(rows["tokens"][on]),
        "tokens_off": _mean(rows["tokens"][off]),
        "mode_choice_accuracy": _mean((rows["mode"] == rows["label"])[labelled]),
        "labelled": float(labelled.sum()) or None,
    }


def oracle(on: pd.DataFrame, off: pd.DataFrame) -> Metrics:
    """Best forced mode per query (queries present in both passes)."""
    both = on.merge(off, on="id", suffixes=("_on", "_off"))
    c_on, c_off = both["correct_on"].astype(bool), both["correct_off"].astype(bool)
    pick_on = (c_on & ~c_off) | ((c_on == c_off) & (both["tokens_on"] < both["tokens_off"]))
    tokens = both["tokens_on"].where(pick_on, both["tokens_off"])
    return {
        "n": float(len(both)),
        "accuracy": _mean(c_on | c_off),
        "tokens": _mean(tokens),
        "think_rate": _mean(pick_on),
    }


@dataclass
class EvalResult:
    """Every scored sample of one model's evaluation; metrics are computed from them on demand."""

    model: str
    samples: pd.DataFrame

    @classmethod
    def from_rows(cls, model: str, rows: list[dict[str, Any]]) -> EvalResult:
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["difficulty"] = frame["difficulty"].astype("Int64")
        return cls(model, frame)

    @property
    def benchmarks(self) -> list[str]:
        return list(dict.fromkeys(self.samples["benchmark"]))

    def rows(self, benchmark: str, pass_: str, difficulty: int | None = None) -> pd.DataFrame:
        """The samples of one benchmark and pass ("auto", "on", "off"), optionally at one difficulty."""
        s = self.samples
        keep = (s["benchmark"] == benchmark) & (s["pass"] == pass_)
        if difficulty is not None:
            keep &= s["difficulty"] == difficulty
        return s[keep.fillna(False).astype(bool)]

    def difficulties(self, benchmark: str) -> list[int]:
        levels = self.samples.loc[self.samples["benchmark"] == benchmark, "difficulty"].dropna()
        return sorted(int(d) for d in levels.unique())

    def has_forced(self, benchmark: str) -> bool:
        return all(len(self.rows(benchmark, p)) for p in ("on", "off"))

    def metrics(self, benchmark: str, pass_: str = "auto", difficulty: int | None = None) -> Metrics:
        """Metrics of one pass ("auto", "on", "off") or of the "oracle", optionally at one difficulty."""
        if pass_ == "oracle":
            return oracle(self.rows(benchmark, "on", difficulty), self.rows(benchmark, "off", difficulty))
        return summarize(self.rows(benchmark, pass_, difficulty))

    def overall(self) -> Metrics:
        """Headline metrics (auto pass) and oracle accuracy/tokens, averaged over benchmarks (macro)."""
        per = [self.metrics(b) for b in self.benchmarks]
        per_oracle = [self.metrics(b, "oracle") for b in self.benchmarks if self.has_forced(b)]
        out = {k: _macro(per, k) for k in HEADLINE}
        out.update({f"oracle_{k}": _macro(per_oracle, k) for k in ("accuracy", "tokens")})
        return out

    def flat_metrics(self) -> dict[str, float]:
        """A flat dict of scalars: ``accuracy`` (macro over benchmarks), ``<benchmark>/accuracy`` (auto
        pass), ``<benchmark>/d<k>/...`` per difficulty, ``<benchmark>/forced_on/...``,
        ``<benchmark>/forced_off/...`` and ``<benchmark>/oracle/...``."""
        groups: dict[str, Metrics] = {"": self.overall()}
        for b in self.benchmarks:
            groups[f"{b}/"] = self.metrics(b)
            groups.update({f"{b}/d{d}/": self.metrics(b, "auto", d) for d in self.difficulties(b)})
            if self.has_forced(b):
                groups.update({f"{b}/forced_{p}/": self.metrics(b, p) for p in ("on", "off")})
                groups[f"{b}/oracle/"] = self.metrics(b, "oracle")
        return {f"{prefix}{k}": v for prefix, m in groups.items() for k, v in m.items() if v is not None}


def _macro(groups: list[Metrics], key: str) -> float | None:
    values = [m[key] for m in groups if m.get(key) is not None]
    return sum(values) / len(values) if values else None  # type: ignore[arg-type]
