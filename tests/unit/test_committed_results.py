"""The committed benchmark results agree with themselves and with the README.

Each ``bench/results/**/comparison*.md`` and ``ablations*.md`` must be what its script renders from the
``.json`` beside it, and every table row of the reference tables must appear verbatim in the README, so a
rerun that updates the results without the README (or a hand edit of either) fails here."""

import json
from pathlib import Path

import pytest

from bench import ablations, comparison

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
RENDERERS = {"comparison": comparison.markdown, "ablations": ablations.markdown}
RESULT_FILES = sorted(p for name in RENDERERS for p in RESULTS.rglob(f"{name}*.json"))


def _rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


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
def test_the_readme_shows_the_reference_tables_as_committed(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = _rows((RESULTS / name).read_text(encoding="utf-8"))
    assert len(rows) > 10
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README lacks {len(missing)} rows of bench/results/{name}, e.g. {missing[0]}"


def test_the_readme_real_model_table_is_the_committed_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Real-model preset", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in _rows(section) if row.startswith("| Cold-Start")]
    assert len(rows) == 3
    committed = (RESULTS / "smollm2_gsm8k.md").read_text(encoding="utf-8")
    assert all(row in committed for row in rows)
