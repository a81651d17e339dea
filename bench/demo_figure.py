"""The README's picture of `make demo`: thinking rate and accuracy per difficulty of each model.

Reads the evaluation summaries a demo run writes (``evaluate/results/summary.md`` and
``evaluate-2/results/summary.md`` under its artifacts folder; committed copies in
``bench/results/demo/``) and draws one line per model::

    .venv/bin/python bench/demo_figure.py bench/results/demo/seed_0_vs_on.md \\
        bench/results/demo/seed_0_vs_mix.md --out docs/images/demo.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import difficulty_figure  # noqa: E402

TABLES = {"Thinking rate per difficulty": "Thinking rate", "Accuracy per difficulty": "Accuracy"}


def per_difficulty(summary: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{panel: {model: {level: value}}}`` from the per-difficulty tables of one evaluation summary."""
    tables: dict[str, dict[str, dict[str, float]]] = {}
    panel = None
    levels: list[str] = []
    for line in summary.splitlines():
        heading = line.lstrip("#").strip()
        if line.startswith("#"):
            panel = TABLES.get(heading)
            levels = []
            continue
        if panel is None or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == "model":
            levels = cells[1:]
        elif levels and not cells[0].startswith(":"):
            tables.setdefault(panel, {})[cells[0]] = dict(zip(levels, map(float, cells[1:]), strict=True))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", type=Path, help="summary.md files of one demo run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "demo.png")
    args = parser.parse_args()
    panels: dict[str, dict[str, dict[str, dict[str, float]]]] = {title: {} for title in TABLES.values()}
    for path in args.summaries:
        for title, rows in per_difficulty(path.read_text(encoding="utf-8")).items():
            for model, row in rows.items():
                panels[title][model] = {d: {"mean": v, "min": v, "max": v} for d, v in row.items()}
    print(difficulty_figure(panels, args.out))


if __name__ == "__main__":
    main()
