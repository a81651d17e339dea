"""Report figures with matplotlib (Agg, no pyplot state), returned as inline PNG ``data:`` URIs.

Each kind of plot has its own light axes background (``BACKGROUNDS``), so a reader (and a screenshot
test) can tell them apart at a glance; models keep one colour across plots, modes have fixed colours.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hipo.evaluate.metrics import EvalResult

MODEL_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
MODE_COLORS = {"on": "#e6550d", "off": "#3182bd"}
BACKGROUNDS = {"think_rate": "#f1ebfa", "accuracy": "#e9f6ea", "lengths": "#fdf3e1"}
DPI = 100


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style(ax: Axes, kind: str) -> None:
    ax.set_facecolor(BACKGROUNDS[kind])
    ax.grid(True, color="white", linewidth=1.2)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def by_difficulty(results: dict[str, EvalResult], benchmark: str, metric: str, title: str) -> str:
    """One line per model: ``metric`` ("think_rate" or "accuracy") of the auto pass per difficulty."""
    fig = Figure(figsize=(5.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    _style(ax, metric)
    levels: set[int] = set()
    for i, (name, result) in enumerate(results.items()):
        xs = result.difficulties(benchmark)
        ys = [result.metrics(benchmark, "auto", d)[metric] for d in xs]
        levels.update(xs)
        ax.plot(xs, ys, marker="o", linewidth=2.2, color=MODEL_COLORS[i % len(MODEL_COLORS)], label=name)
    ax.set_xticks(sorted(levels), [f"d{d}" for d in sorted(levels)])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("difficulty")
    ax.set_title(title, fontsize=11)
    fig.legend(loc="outside lower center", ncols=min(len(results), 3), fontsize=8, frameon=False)
    return _png(fig)


def length_histograms(results: dict[str, EvalResult], benchmark: str) -> str:
    """One panel per model: response tokens of the auto pass, Think-on and Think-off bars side by side."""
    cols = min(len(results), 3)
    lines = -(-len(results) // cols)
    fig = Figure(figsize=(3.7 * cols, 2.7 * lines), layout="constrained")
    axes = fig.subplots(lines, cols, squeeze=False, sharex=True)
    every = [r.rows(benchmark, "auto")["tokens"].to_numpy(float) for r in results.values()]
    edges = np.histogram_bin_edges(np.concatenate(every) if every else [0.0], bins=24)
    for ax, (name, result) in zip(axes.flat, results.items(), strict=False):
        _style(ax, "lengths")
        auto = result.rows(benchmark, "auto")
        tokens = [auto.loc[auto["mode"] == mode, "tokens"].to_numpy(float) for mode in MODE_COLORS]
        labels = [f"think-{mode} ({len(t)})" for mode, t in zip(MODE_COLORS, tokens, strict=True)]
        ax.hist(tokens, bins=edges, color=list(MODE_COLORS.values()), label=labels)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("response tokens")
        ax.tick_params(labelbottom=True)
        ax.legend(fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(results) :]:
        ax.set_visible(False)
    return _png(fig)
