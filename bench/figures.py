"""The README's figures of the benchmark tables: per difficulty, the mean over seeds with min–max bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hipo.evaluate.plots import MODEL_COLORS

LINE_STYLES = (("o", "-"), ("s", "--"), ("^", ":"))


def line_style(i: int) -> dict[str, str]:
    """Colour, marker and line style of row ``i``: the colours repeat past the palette, the pair of
    marker and dashes changes each time they do, so up to 24 rows stay apart."""
    marker, linestyle = LINE_STYLES[i // len(MODEL_COLORS) % len(LINE_STYLES)]
    return {"color": MODEL_COLORS[i % len(MODEL_COLORS)], "marker": marker, "linestyle": linestyle}


def difficulty_figure(panels: dict[str, dict[str, dict[str, dict[str, Any]]]], path: Path) -> Path:
    """One panel per ``{title: {row: {level: spread}}}`` (a spread has mean, min and max), one line per
    row; a row's lines keep one style across panels. Written as PNG to ``path``."""
    fig = Figure(figsize=(5.2 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, table) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True
    ):
        for i, (name, row) in enumerate(table.items()):
            levels = [d for d in row if row[d]["mean"] is not None]
            means = [row[d]["mean"] for d in levels]
            bars = [
                [m - row[d]["min"] for d, m in zip(levels, means, strict=True)],
                [row[d]["max"] - m for d, m in zip(levels, means, strict=True)],
            ]
            shift = (i - (len(table) - 1) / 2) * 0.06  # keep overlapping lines and bars apart
            xs = [k + shift for k in range(len(levels))]
            ax.errorbar(xs, means, yerr=bars, capsize=3, linewidth=2, label=name, **line_style(i))
            ax.set_xticks(range(len(levels)), levels)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("difficulty")
        ax.set_title(title, fontsize=11)
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=9, frameon=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
