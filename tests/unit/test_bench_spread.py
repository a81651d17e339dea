"""The benchmarks' per-seed spread and its figure (bench/comparison.py, bench/figures.py)."""

import math
from pathlib import Path

import pytest

from bench.comparison import spread
from bench.figures import difficulty_figure, line_style


@pytest.mark.parametrize("value", [0.1, 0.99, 0.995, 1.0])
def test_the_mean_of_equal_values_is_that_value(value: float) -> None:
    s = spread([value] * 3)
    assert s["min"] == s["mean"] == s["max"] == value


def test_spread_leaves_out_undefined_values() -> None:
    s = spread([0.2, None, math.nan, 0.4])
    assert (s["min"], s["max"]) == (0.2, 0.4)
    assert s["mean"] == pytest.approx(0.3)
    assert s["values"] == [0.2, None, None, 0.4]


def test_a_figure_of_seeds_that_agree_is_written(tmp_path: Path) -> None:
    """Three seeds at 0.99 once made matplotlib refuse a (rounding-)negative error bar."""
    row = {f"d{k}": spread([0.99, 0.99, 0.99]) for k in range(1, 4)}
    path = difficulty_figure({"accuracy": {"arm": row}}, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_past_the_palette_get_a_style_of_their_own() -> None:
    """The ablation table has 11 rows and the palette 8 colours: row 8 once looked like row 0."""
    styles = [tuple(line_style(i).values()) for i in range(24)]
    assert len(set(styles)) == 24
    assert line_style(0)["color"] == line_style(8)["color"]
    assert line_style(0)["linestyle"] != line_style(8)["linestyle"]
