"""The data-quality gate (hipo/quality): a good dataset passes; each broken one fails naming its cause."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from quality_dataset import build_good_rows, write_dataset

from hipo import template
from hipo.config import QualityConfig
from hipo.quality import DatasetError, GateFailed, check, validate_dataset, write_report
from hipo.storage.datasets import SPLITS

CONFIG = QualityConfig()


@pytest.fixture(scope="module")
def good() -> dict[str, pd.DataFrame]:
    return build_good_rows()


@pytest.fixture(scope="module")
def good_result(good, tmp_path_factory):
    return validate_dataset(write_dataset(good, tmp_path_factory.mktemp("good")), CONFIG)


def test_good_dataset_passes(good_result):
    assert good_result.passed, good_result.message()
    assert good_result.row_counts == {"train": 300, "eval": 75}
    assert check(good_result) is good_result
    assert not good_result.failures and not good_result.skipped
    json.dumps(good_result.to_dict())  # serialisable as it is


def test_jsonl_input_passes(good, tmp_path):
    result = validate_dataset(write_dataset(good, tmp_path, ".jsonl"), CONFIG)
    assert result.passed, result.message()


def test_report_is_self_contained_and_names_every_expectation(good, good_result, tmp_path):
    frames = {s: f.copy() for s, f in good.items()}
    frames["train"].loc[0, "response"] = "See http://example.com/x.png <img src='http://evil/'>"
    failed = validate_dataset(write_dataset(frames, tmp_path / "data"), CONFIG)
    for result in (good_result, failed):
        written = write_report(result, tmp_path / "report")
        page = Path(written["report.html"]).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?\s*https?:", page, re.I)
        assert not re.search(r"<link\b|<script\b|https?://", page, re.I)
        for c in result.checks:
            assert c.name in page
        saved = json.loads(Path(written["result.json"]).read_text())
        assert saved["passed"] is result.passed and len(saved["checks"]) == len(result.checks)
    assert "FAIL" in page and "&lt;img src=" in page


Mutation = Callable[[dict[str, pd.DataFrame]], None]


def _set(split: str, column: str, value: object, row: int = 0) -> Mutation:
    def mutate(frames: dict[str, pd.DataFrame]) -> None:
        frames[split].loc[row, column] = value

    return mutate


def _drop_column(frames):
    frames["eval"] = frames["eval"].drop(columns=["reference_answer"])


def _bad_tags(frames):
    frames["train"].loc[3, "response"] = frames["train"].loc[3, "response"].replace("</judge>", "")


def _mode_mismatch(frames):
    train = frames["train"]
    row = train.index[train["mode"] == "off"][0]
    train.loc[row, "mode"] = "on"


def _leak(frames):
    frames["train"].loc[5, "prompt"] = frames["eval"].loc[0, "prompt"]


def _all_on(frames):
    for split in SPLITS:
        f = frames[split]
        f["response"] = [template.render("on", "j", a, think="x") for a in f["answer"]]
        f["mode"] = "on"


def _duplicate_prompt(frames):
    frames["train"].loc[7, "prompt"] = frames["train"].loc[8, "prompt"]


def _too_long(frames):
    train = frames["train"]
    row = train.index[train["mode"] == "off"][0]
    train.loc[row, "n_tokens"] = CONFIG.max_tokens_off + 1


def _bad_values(frames):
    frames["train"].loc[0, "mode"] = "maybe"
    frames["eval"].loc[0, "difficulty"] = "trivial"


BROKEN: dict[str, tuple[Mutation, str]] = {
    "missing column": (_drop_column, r"columns_present.*\n.*'missing': \['reference_answer'\]"),
    "bad tags": (_bad_tags, r"response_format_ok.*1 offending row"),
    "mode mismatch": (_mode_mismatch, r"mode_matches_response.*1 offending row"),
    "answer block differs": (
        _set("train", "answer", "424242", row=2),
        r"answer_matches_response.*1 offending",
    ),
    "leaked eval prompt": (_leak, r"no_eval_prompt_in_train.*1 offending"),
    "all think-on": (_all_on, r"think_on_share:train.*observed 1\.0"),
    "duplicate prompt": (_duplicate_prompt, r"prompt_unique_per_split.*2 offending"),
    "p_on out of range": (_set("eval", "p_on", 1.5), r"p_on_range.*1 offending"),
    "null value": (_set("train", "teacher", None, row=4), r"not_null:teacher.*1 offending"),
    "too-long response": (_too_long, r"tokens_off_within_bounds.*1 offending"),
    "values outside their sets": (
        _bad_values,
        r"(?s)mode_values.*1 offending.*difficulty_values.*1 offending",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_dataset_fails_naming_the_cause(case, good, tmp_path):
    mutate, pattern = BROKEN[case]
    frames = {s: f.copy() for s, f in good.items()}
    mutate(frames)
    result = validate_dataset(write_dataset(frames, tmp_path), CONFIG)
    with pytest.raises(GateFailed, match=pattern) as caught:
        check(result)
    assert caught.value.result is result and not result.passed
    assert all(c.examples or c.observed is not None for c in result.failures), result.message()
    json.dumps(result.to_dict())


def test_examples_show_the_offending_row(good, tmp_path):
    frames = {s: f.copy() for s, f in good.items()}
    _mode_mismatch(frames)
    result = validate_dataset(write_dataset(frames, tmp_path), CONFIG)
    (failure,) = result.failures
    (example,) = failure.examples
    assert example["mode"] == "on" and example["_parsed_mode"] == "off" and example["split"] == "train"


def _write(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train.parquet": b""}, r"train\.parquet is empty \(0 bytes\)"),
        ({"train.parquet": b"id,prompt\n1,x\n"}, r"not a Parquet file"),
        ({"train.parquet": b"PAR1 truncated garbage PAR1"}, r"corrupt or truncated Parquet"),
        ({"train.jsonl": b'{"id": "a"}\n{"id": "caf\xe9"}\n'}, r"not UTF-8 text: byte 0xe9 .*line 2"),
        ({"train.jsonl": b'{"id": "a"}\n{"id": \n'}, r"line 2 is not valid JSON"),
        ({"eval.parquet": b"x"}, r"has no train split: expected train\.parquet or train\.jsonl"),
    ],
)
def test_unreadable_input_names_the_file_and_cause(files, message, good, tmp_path):
    directory = write_dataset({"eval": good["eval"]}, tmp_path)
    for name, data in files.items():
        _write(directory, name, data)
    with pytest.raises(DatasetError, match=message):
        validate_dataset(directory, CONFIG)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset directory .*nowhere does not exist"):
        validate_dataset(tmp_path / "nowhere", CONFIG)


def test_zero_rows_fails_the_gate(good, tmp_path):
    frames = {"train": good["train"], "eval": good["eval"].iloc[0:0]}
    result = validate_dataset(write_dataset(frames, tmp_path), CONFIG)
    with pytest.raises(GateFailed, match=r"splits_have_rows.*'missing': \['eval'\]"):
        check(result)


def test_thresholds_come_from_the_config(good, good_result):
    strict = QualityConfig(max_tokens_off=5, max_think_on_share=0.1, examples_per_failure=2)
    result = validate_dataset(good_result.dataset, strict)
    failed = {c.name: c for c in result.failures}
    assert set(failed) == {"tokens_off_within_bounds", "think_on_share:train", "think_on_share:eval"}
    tokens = failed["tokens_off_within_bounds"]
    assert tokens.unexpected_count == int(
        (good["train"]["mode"] == "off").sum() + (good["eval"]["mode"] == "off").sum()
    )
    assert len(tokens.examples) == 2 and all(e["n_tokens"] > 5 for e in tokens.examples)
