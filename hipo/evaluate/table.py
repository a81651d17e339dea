"""The paper's comparison table (docs/algorithm.md §7) and the per-benchmark tables, as frames and Markdown.

Relative changes are fractions in the frames (``0.062``) and formatted as ``+6.2%``.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from hipo.evaluate.metrics import EvalResult

ROW_ORDER = (
    "Cold-Start (on)",
    "Cold-Start (on)+GRPO",
    "Cold-Start (mix)",
    "Cold-Start (mix)+GRPO",
    "Cold-Start (mix)+HiPO",
)
VALUES = ("accuracy", "tokens", "think_rate")
DETAIL = ("accuracy", "tokens", "think_rate", "accuracy_on", "accuracy_off", "tokens_on", "tokens_off",
          "format_fail_rate", "mode_choice_accuracy", "oracle_accuracy", "oracle_tokens")  # fmt: skip
LABELS = {
    "think_rate": "thinking rate",
    "format_fail_rate": "format failures",
    "mode_choice_accuracy": "mode-choice acc.",
    "accuracy_on": "acc. (on)",
    "accuracy_off": "acc. (off)",
    "tokens_on": "tokens (on)",
    "tokens_off": "tokens (off)",
    "oracle_accuracy": "oracle acc.",
    "oracle_tokens": "oracle tokens",
}


def _key(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


def ordered_names(names: list[str]) -> list[str]:
    """The paper's rows first, in its order (matched ignoring case and spaces), then the rest as given."""
    rank = {_key(n): i for i, n in enumerate(ROW_ORDER)}
    return sorted(names, key=lambda n: (rank.get(_key(n), len(rank)), names.index(n)))


def comparison_table(
    results: dict[str, EvalResult], baseline: str = "Cold-Start (on)", benchmark: str | None = None
) -> pd.DataFrame:
    """Rows: models; columns: accuracy, tokens, think_rate and each one's ``*_rel`` change to the
    baseline row (the first row when no row matches ``baseline``). Values are macro averages over
    benchmarks, or one ``benchmark``'s. The baseline's name is in ``frame.attrs["baseline"]``."""
    names = ordered_names(list(results))
    rows = {}
    for name in names:
        m = results[name].overall() if benchmark is None else results[name].metrics(benchmark)
        rows[name] = {k: m[k] for k in VALUES}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(VALUES), dtype=float)
    frame.index.name = "model"
    base = next((n for n in names if _key(n) == _key(baseline)), names[0])
    for k in VALUES:
        ref = frame.at[base, k]
        frame[f"{k}_rel"] = frame[k] / ref - 1.0 if ref and not math.isnan(ref) else math.nan
    frame.attrs["baseline"] = base
    return frame[[c for k in VALUES for c in (k, f"{k}_rel")]]


def table_metrics(frame: pd.DataFrame, prefix: str = "comparison") -> dict[str, float]:
    """A comparison table as flat metrics, ``comparison/<row slug>/<column>`` (NaN left out), for MLflow
    and KFP: ``comparison/Cold-Start-mix-HiPO/tokens_rel``."""
    return {
        f"{prefix}/{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-')}/{column}": float(value)
        for name, row in frame.iterrows()
        for column, value in row.items()
        if not math.isnan(value)
    }


def detail_table(results: dict[str, EvalResult], benchmark: str) -> pd.DataFrame:
    """Rows: models; columns: every DETAIL metric of one benchmark (oracle ones where forced passes ran)."""
    rows = {}
    for name in ordered_names(list(results)):
        result = results[name]
        m = dict(result.metrics(benchmark))
        if result.has_forced(benchmark):
            m.update({f"oracle_{k}": v for k, v in result.metrics(benchmark, "oracle").items()})
        rows[name] = {k: m.get(k) for k in DETAIL}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(DETAIL), dtype=float)
    frame.index.name = "model"
    return frame


def difficulty_table(results: dict[str, EvalResult], benchmark: str, metric: str) -> pd.DataFrame:
    """Rows: models; columns: difficulty levels (``d1`` ...); cells: ``metric`` of the auto pass."""
    rows = {
        name: {
            f"d{d}": results[name].metrics(benchmark, "auto", d)[metric]
            for d in results[name].difficulties(benchmark)
        }
        for name in ordered_names(list(results))
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    frame.index.name = "model"
    return frame[sorted(frame.columns, key=lambda c: int(c[1:]))]


def _cell(column: str, value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    if column.endswith("_rel"):
        return f"{value * 100:+.1f}%"
    if "tokens" in column:
        return f"{value:.1f}"
    return f"{value:.3f}"


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as display strings with readable headers (relative changes as ``+6.2%``)."""
    out = pd.DataFrame({c: [_cell(c, v) for v in frame[c]] for c in frame.columns}, index=frame.index)
    return out.rename(
        columns=lambda c: f"Δ {LABELS.get(c[:-4], c[:-4])}" if c.endswith("_rel") else LABELS.get(c, c)
    )


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``formatted(frame)``."""
    return formatted(frame).to_markdown(
        colalign=["left"] + ["right"] * len(frame.columns), disable_numparse=True
    )
