"""The committed benchmark results agree with themselves and with the documents that quote them.

Each ``bench/results/**/comparison*.md`` and ``ablations*.md`` must be what its script renders from the
``.json`` beside it; every table row of the reference tables must appear verbatim in docs/results.md,
and the README's result and demo rows in the committed files, so a rerun that updates the results
without the documents (or a hand edit of either) fails here."""

import json
from pathlib import Path

import pytest

from bench import ablations, comparison
from bench.demo_figure import per_difficulty

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DEMO = RESULTS / "demo"
RESULTS_DOC = ROOT / "docs" / "results.md"
RENDERERS = {"comparison": comparison.markdown, "ablations": ablations.markdown}
RESULT_FILES = sorted(p for name in RENDERERS for p in RESULTS.rglob(f"{name}*.json"))
DEMO_SEEDS = (0, 1, 2)


def _rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _summary_row(path: Path, model: str) -> dict[str, float]:
    """accuracy, tokens and thinking rate of ``model`` in the comparison table of an evaluation summary."""
    rows = [_cells(row) for row in _rows(path.read_text(encoding="utf-8"))]
    header = rows[0]
    row = next(r for r in rows if r[0] == model)
    return {key: float(row[header.index(key)]) for key in ("accuracy", "tokens", "thinking rate")}


def test_there_are_committed_results() -> None:
    names = {p.relative_to(RESULTS).as_posix() for p in RESULT_FILES}
    assert {"comparison.json", "comparison-check.json", "ablations.json", "ablations-check.json"} <= names


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_each_table_is_rendered_from_its_json(path: Path) -> None:
    render = RENDERERS[path.stem.split("-")[0]]
    table = path.with_suffix(".md")
    assert table.is_file(), f"{path} has no {table.name} beside it"
    expected = render(json.loads(path.read_text(encoding="utf-8")))
    assert table.read_text(encoding="utf-8") == expected, f"{table} is not rendered from {path.name}"


@pytest.mark.parametrize("name", ["comparison.md", "ablations.md"])
def test_the_results_document_shows_the_reference_tables_as_committed(name: str) -> None:
    document = RESULTS_DOC.read_text(encoding="utf-8")
    rows = _rows((RESULTS / name).read_text(encoding="utf-8"))
    assert len(rows) > 10
    missing = [row for row in rows if row not in document]
    assert not missing, (
        f"docs/results.md lacks {len(missing)} rows of bench/results/{name}, e.g. {missing[0]}"
    )


def test_the_readme_results_rows_are_the_committed_ones() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [row for row in _rows(_section(readme, "## Results")) if row.startswith("| Cold-Start")]
    assert len(rows) >= 3
    committed = (RESULTS / "comparison.md").read_text(encoding="utf-8")
    assert [row for row in rows if row not in committed] == []


def test_the_readme_demo_table_is_what_the_committed_demo_printed() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [
        row for row in _rows(_section(readme, "## What the demo prints")) if row.startswith("| Cold-Start")
    ]
    assert len(rows) >= 2
    printed = "".join((DEMO / f"seed_0_vs_{arm}.md").read_text(encoding="utf-8") for arm in ("on", "mix"))
    assert [row for row in rows if row not in printed] == []


def test_the_real_model_table_is_the_committed_one() -> None:
    section = _section(
        RESULTS_DOC.read_text(encoding="utf-8"), "## Real-model preset (SmolLM2-135M on GSM8K)"
    )
    rows = [row for row in _rows(section) if row.startswith("| Cold-Start")]
    assert len(rows) == 3
    committed = (RESULTS / "smollm2_gsm8k.md").read_text(encoding="utf-8")
    assert all(row in committed for row in rows)


@pytest.mark.parametrize("seed", DEMO_SEEDS)
def test_the_results_document_demo_rows_match_the_committed_summaries(seed: int) -> None:
    section = _section(RESULTS_DOC.read_text(encoding="utf-8"), "## The studies behind today's defaults")
    row = next(_cells(r) for r in _rows(section) if _cells(r)[0] == str(seed))
    on = _summary_row(DEMO / f"seed_{seed}_vs_on.md", "Cold-Start (on)")
    mix = _summary_row(DEMO / f"seed_{seed}_vs_mix.md", "Cold-Start (mix)")
    hipo = _summary_row(DEMO / f"seed_{seed}_vs_on.md", "Cold-Start (mix)+HiPO")
    accuracy, tokens_ratio, think_rate = (
        (float(v) for v in (row[1], row[2], row[3])),
        float(row[4]),
        float(row[5]),
    )
    assert tuple(accuracy) == (on["accuracy"], mix["accuracy"], hipo["accuracy"])
    # the summaries round tokens to 0.1, so their ratio is known to about 0.002
    assert tokens_ratio == pytest.approx(hipo["tokens"] / on["tokens"], abs=0.002)
    assert think_rate == hipo["thinking rate"]


@pytest.mark.parametrize("seed", DEMO_SEEDS)
def test_the_demo_figure_reads_both_per_difficulty_tables(seed: int) -> None:
    summary = (DEMO / f"seed_{seed}_vs_mix.md").read_text(encoding="utf-8")
    tables = per_difficulty(summary)
    assert set(tables) == {"Thinking rate", "Accuracy"}
    for table in tables.values():
        assert set(table) == {"Cold-Start (mix)", "Cold-Start (mix)+HiPO"}
        assert all(list(row) == ["d1", "d2", "d3", "d4", "d5"] for row in table.values())
    mix = _summary_row(DEMO / f"seed_{seed}_vs_mix.md", "Cold-Start (mix)")
    levels = tables["Accuracy"]["Cold-Start (mix)"].values()
    # 50 problems per level: the overall accuracy is the mean of the five levels
    assert sum(levels) / 5 == pytest.approx(mix["accuracy"], abs=1e-3)
