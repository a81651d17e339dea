"""The run report: one self-contained ``report.html``, a Markdown ``summary.md`` and a flat ``metrics.json``.

The HTML has inline CSS and inline PNG ``data:`` images only: no scripts, links or URLs (text from the
data is escaped and any ``://`` in it written as entities), so it renders in the KFP UI's sandbox and
offline. ``metrics.json`` holds one model's ``EvalResult.flat_metrics()`` (the ``primary`` model, by
default the last row of the comparison table, i.e. the candidate) plus its ``*_rel`` changes to the
baseline: a KFP ``Metrics`` artifact.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from hipo import storage
from hipo.evaluate.metrics import EvalResult
from hipo.evaluate.plots import by_difficulty, length_histograms
from hipo.evaluate.table import (
    comparison_table,
    detail_table,
    difficulty_table,
    formatted,
    ordered_names,
    to_markdown,
)
from hipo.storage import join_uri
from hipo.storage.html import BASE_CSS

MAX_SAMPLE_CHARS = 2000
# each report adds its own rules after the shared BASE_CSS
_CSS = """
body{max-width:1100px}
h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1em}
td,th{text-align:right}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:.5em}img{max-width:100%}.wide{overflow-x:auto}
.muted{font-size:.9em}
.sample{margin:.5em 0;padding:.3em .6em;border-left:4px solid #ccc;background:#fafafa}
.sample.on{border-color:#e6550d}.sample.off{border-color:#3182bd}
pre{white-space:pre-wrap;margin:.3em 0;font-size:.85em}
"""


def _esc(value: object) -> str:
    return html.escape(str(value)).replace("://", "&#58;&#47;&#47;")


def _table(frame: pd.DataFrame) -> str:
    shown = formatted(frame)
    head = "".join(f"<th>{_esc(c)}</th>" for c in [shown.index.name or "", *shown.columns])
    body = "".join(
        f"<tr><td>{_esc(name)}</td>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>"
        for name, row in zip(shown.index, shown.itertuples(index=False), strict=True)
    )
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_esc(alt)}">'


def _samples(name: str, result: EvalResult, benchmark: str, per_mode: int) -> str:
    """Up to ``per_mode`` responses per mode: chosen in auto mode, else from the forced pass."""
    auto = result.rows(benchmark, "auto")
    parts = []
    for mode in ("on", "off"):
        rows, how = auto[auto["mode"] == mode], "chosen"
        if rows.empty:
            rows, how = result.rows(benchmark, mode), "forced"
        for r in rows.head(per_mode).itertuples():
            text = r.text if len(r.text) <= MAX_SAMPLE_CHARS else r.text[:MAX_SAMPLE_CHARS] + " …"
            verdict = "correct" if r.correct else "wrong"
            facts = f"{r.prompt} · gold {r.gold} · {verdict} · {r.tokens} tokens · think-{mode} ({how})"
            parts.append(f'<div class="sample {mode}"><div class="muted">{_esc(facts)}</div>'
                         f"<pre>{_esc(text)}</pre></div>")  # fmt: skip
    return f"<h3>{_esc(name)}</h3>" + ("".join(parts) or '<p class="muted">no samples</p>')


def _benchmark_html(results: dict[str, EvalResult], benchmark: str) -> str:
    n = max(len(r.rows(benchmark, "auto")) for r in results.values())
    out = [f"<h2>{_esc(benchmark)}</h2><p class='muted'>{n} problems per model</p>"]
    out.append(_table(detail_table(results, benchmark)))
    if any(r.difficulties(benchmark) for r in results.values()):
        think = by_difficulty(results, benchmark, "think_rate", "Thinking rate vs difficulty")
        acc = by_difficulty(results, benchmark, "accuracy", "Accuracy per difficulty")
        out.append(f'<div class="plots">{_img(think, "thinking rate")}{_img(acc, "accuracy")}</div>')
    else:
        out.append('<p class="muted">no difficulty levels in this benchmark</p>')
    out.append(f"<h3>Response length per mode</h3>{_img(length_histograms(results, benchmark), 'lengths')}")
    return "".join(out)


def render_html(results: dict[str, EvalResult], title: str, baseline: str, per_mode: int = 2) -> str:
    """The whole report as one HTML document."""
    results = {name: results[name] for name in ordered_names(list(results))}
    benchmarks = list(dict.fromkeys(b for r in results.values() for b in r.benchmarks))
    table = comparison_table(results, baseline)
    body = [f"<h1>{_esc(title)}</h1>",
            f"<p class='muted'>{len(results)} models · benchmarks: {_esc(', '.join(benchmarks))}</p>",
            "<h2>Comparison</h2>", _table(table),
            f"<p class='muted'>Δ: relative change to {_esc(table.attrs['baseline'])}; "
            "auto mode, averaged over benchmarks.</p>"]  # fmt: skip
    body += [_benchmark_html(results, b) for b in benchmarks]
    for b in benchmarks:
        body.append(f"<h2>Sample responses: {_esc(b)}</h2>")
        body += [_samples(name, r, b, per_mode) for name, r in results.items()]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{BASE_CSS}{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def render_markdown(results: dict[str, EvalResult], title: str, baseline: str) -> str:
    """The summary: comparison table, then per benchmark its metrics and per-difficulty tables."""
    table = comparison_table(results, baseline)
    lines = [f"# {title}", "", f"## Comparison (Δ relative to {table.attrs['baseline']})", "",
             to_markdown(table), ""]  # fmt: skip
    for b in dict.fromkeys(b for r in results.values() for b in r.benchmarks):
        lines += [f"## {b}", "", to_markdown(detail_table(results, b)), ""]
        for metric, label in (("think_rate", "Thinking rate"), ("accuracy", "Accuracy")):
            levels = difficulty_table(results, b, metric)
            if not levels.columns.empty:
                lines += [f"### {label} per difficulty", "", to_markdown(levels), ""]
    return "\n".join(lines)


def report_metrics(
    results: dict[str, EvalResult], baseline: str, primary: str | None = None
) -> dict[str, float]:
    """The primary model's flat metrics plus ``accuracy_rel``, ``tokens_rel``, ``think_rate_rel``."""
    primary = primary or ordered_names(list(results))[-1]
    metrics = results[primary].flat_metrics()
    table = comparison_table(results, baseline)
    if table.attrs["baseline"] != primary:
        for k in ("accuracy_rel", "tokens_rel", "think_rate_rel"):
            value = float(table.at[primary, k])
            if not math.isnan(value):
                metrics[k] = value
    return metrics


def write_report(
    results: dict[str, EvalResult],
    out_dir: str | Path,
    title: str = "HiPO evaluation",
    baseline: str = "Cold-Start (on)",
    primary: str | None = None,
) -> dict[str, str]:
    """Write ``report.html``, ``summary.md`` and ``metrics.json`` into ``out_dir`` (local or s3://)."""
    if not results:
        raise ValueError("write_report needs at least one EvalResult")
    files = {
        "report.html": render_html(results, title, baseline),
        "summary.md": render_markdown(results, title, baseline),
        "metrics.json": json.dumps(report_metrics(results, baseline, primary), indent=2, sort_keys=True),
    }
    written = {name: join_uri(str(out_dir), name) for name in files}
    for name, text in files.items():
        storage.write_bytes(written[name], text.encode("utf-8"))
    return written
