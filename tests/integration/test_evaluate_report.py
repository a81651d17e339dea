"""The run report: self-contained HTML that renders its plots in headless Chromium; Markdown; metrics; CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hipo.cli import main
from hipo.config import build_config
from hipo.engines import ScriptedEngine
from hipo.evaluate import EvalResult, evaluate_model, load_benchmarks, write_report
from hipo.evaluate.plots import BACKGROUNDS, MODE_COLORS, MODEL_COLORS
from hipo.tasks.teacher import ScriptedTeacher

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXTERNAL = re.compile(
    r"<script|<link|<iframe|@import|url\(|https?:|//[\w.-]+\.\w|(?:src|href)=\"(?!data:)", re.I
)
NASTY = '<script>alert(1)</script><img src="https://evil.example/x.png"> see http://a.example'


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, EvalResult]:
    config = build_config({"eval": {"max_problems": 60, "batch_size": 32}})
    benchmarks = load_benchmarks(config.eval, 0)
    out = tmp_path_factory.mktemp("runs")
    always_right = ScriptedTeacher({d: (0.0, 0.0) for d in range(1, 6)})
    return {
        "Cold-Start (mix)+HiPO": evaluate_model(ScriptedEngine(seed=1), benchmarks, config, out / "hipo"),
        "Cold-Start (on)": evaluate_model(ScriptedEngine(always_right), benchmarks, config, out / "on"),
    }


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> dict[str, str]:
    nasty = results["Cold-Start (on)"].samples.copy()
    nasty.loc[nasty.index[0], ["text", "prompt"]] = [NASTY, "<b>bold?</b> ftp://x"]
    with_nasty = {**results, "Cold-Start (on)": EvalResult("on", nasty)}
    return write_report(with_nasty, tmp_path_factory.mktemp("report"), title="Report <test>")


def test_html_is_self_contained_and_escaped(report):
    page = Path(report["report.html"]).read_text(encoding="utf-8")
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert page.count('<img src="data:image/png;base64,') == 3  # think rate, accuracy, lengths
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Report &lt;test&gt;" in page
    for part in (
        "<h2>Comparison</h2>",
        'alt="thinking rate"',
        'alt="accuracy"',
        'alt="lengths"',
        "<h2>Sample responses: arithmetic</h2>",
    ):
        assert part in page, part
    assert page.index("Cold-Start (on)") < page.index("Cold-Start (mix)+HiPO")  # the paper's row order


def test_summary_and_metrics(report, results):
    summary = Path(report["summary.md"]).read_text(encoding="utf-8")
    assert "## Comparison (Δ relative to Cold-Start (on))" in summary
    assert (
        "| Cold-Start (on)       |      1.000 |" in summary and "### Thinking rate per difficulty" in summary
    )
    metrics = json.loads(Path(report["metrics.json"]).read_text())
    assert all(isinstance(v, float) for v in metrics.values())
    hipo = results["Cold-Start (mix)+HiPO"]  # the candidate: the last row
    assert metrics["arithmetic/accuracy"] == hipo.metrics("arithmetic")["accuracy"]
    assert metrics["accuracy_rel"] == pytest.approx(hipo.overall()["accuracy"] - 1.0)  # baseline acc is 1
    assert {"arithmetic/think_rate", "arithmetic/d5/accuracy", "arithmetic/oracle/tokens"} <= metrics.keys()


def _near(pixels: np.ndarray, color: str, tolerance: int = 3) -> int:
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels[..., :3].astype(int) - rgb).max(axis=-1) <= tolerance).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make browser` installs it)")
def test_report_renders_plots_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000", f"--screenshot={shot}",
         Path(report["report.html"]).resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (3000, 1200, 3)
    for kind, color in BACKGROUNDS.items():  # each plot's own axes background
        assert _near(pixels, color) > 20_000, kind
    for mode, color in MODE_COLORS.items():  # histogram bars of both modes
        assert _near(pixels, color) > 200, mode
    for color in MODEL_COLORS[:2]:  # the two models' lines
        assert _near(pixels, color, tolerance=8) > 100, color


def test_cli_evaluate_two_models_with_labels(tiny_model_dir, tmp_path, capsys):
    labels = tmp_path / "data"
    labels.mkdir()
    pd.DataFrame({"prompt": ["What is 1 + 2?"], "preferred_mode": ["off"]}).to_parquet(
        labels / "eval.parquet"
    )
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "scripted", "--name", "Cold-Start (mix)+HiPO", "--model",
            str(tiny_model_dir), "--name", "Cold-Start (on)", "--out", str(out), "--labels", str(labels),
            "--set", "eval.max_problems=10", "--set", "eval.forced_mode_passes=false", "--set",
            "eval_sampling.max_new_tokens=6"]  # fmt: skip
    assert main(args) == 0
    written = json.loads(capsys.readouterr().out)
    assert set(written) == {"report.html", "summary.md", "metrics.json"}
    assert (out / "models" / "Cold-Start-on" / "samples.jsonl").is_file()
    assert "arithmetic/accuracy" in json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", "--model", "scripted", "--name", "a", "--name", "b", "--out", str(out)]) == 2

    again = tmp_path / "again"  # the checkpoint under another name: its samples are copied, not redone
    renamed = [*args[:8], "the tiny model", "--out", str(again), *args[11:], "--reuse", str(out)]
    assert main(renamed) == 0
    record = json.loads((again / "models" / "the-tiny-model" / "eval_run.json").read_text())
    assert record["copied_from"] == str(out / "models" / "Cold-Start-on")
    scripted = again / "models" / "Cold-Start-mix-HiPO" / "eval_run.json"
    assert "copied_from" in json.loads(scripted.read_text())
