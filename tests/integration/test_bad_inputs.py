"""A corpus of bad inputs driven through the real ``hipo`` entry point (in process): each one is refused
with a short message that names the input and the problem, exit status 2 (1 for a failed quality
gate), and no traceback; or it is accepted on purpose, which the case says.

Cases are built in ``tmp_path`` by small writers; the model folders come from the session's tiny model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hipo.cli import main


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # "{tmp}" is the case's folder, "{model}" a copy of the tiny HiPO model
    files: dict[str, str | bytes] = field(default_factory=dict)  # relative path -> content
    says: tuple[str, ...] = ()  # fragments the message must contain (case-insensitive)
    code: int = 2
    setup: Callable[[Path], None] | None = None  # builds more inputs in the case's folder
    lines: int = 2  # most lines the message may have


def run_case(case: Case, tmp: Path, model: Path | None, capsys: pytest.CaptureFixture[str]) -> str:
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.setup is not None:
        case.setup(tmp)
    argv = [a.replace("{tmp}", str(tmp)).replace("{model}", str(model)) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses malformed options itself
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == case.code, f"exit {code}, stderr: {err[-2000:]}"
    message = err.splitlines()[-case.lines :] if code != 1 else err.splitlines()
    assert len("\n".join(message)) < 1500, "the message echoes a large input"
    assert "Traceback" not in err
    text = "\n".join(message).lower()
    for fragment in case.says:
        assert fragment.lower() in text, f"{fragment!r} not in {text!r}"
    return err


def billion_laughs() -> str:
    lines, previous = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'], "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "\n".join([*lines, "task:", "  datasets: *i"]) + "\n"


CONFIG_CASES = [
    Case(
        "yaml-date", ["config", "-c", "{tmp}/c.yaml"], {"c.yaml": "seed: 2024-01-01\n"}, ("seed", "integer")
    ),
    Case(
        "yaml-duplicate-key",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "seed: 1\nseed: 2\n"},
        ("c.yaml", "'seed' appears twice"),
    ),
    Case(
        "yaml-duplicate-nested-key",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "rl:\n  omega: 0.1\n  steps: 3\n  omega: 0.2\n"},
        ("'omega' appears twice", "line 4"),
    ),
    Case(
        "yaml-billion-laughs",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": billion_laughs()},
        ("c.yaml", "aliases expand past"),
    ),
    Case(
        "yaml-recursive-alias",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "a: &a [*a]\n"},
        ("aliases expand past",),
    ),
    Case(
        "yaml-deep-nesting",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "x: " + "[" * 3000 + "]" * 3000},
        ("c.yaml", "nested too deeply"),
    ),
    Case(
        "yaml-binary",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "seed: !!binary aGVsbG8=\n"},
        ("not plain data",),
    ),
    Case("yaml-not-utf8", ["config", "-c", "{tmp}/c.yaml"], {"c.yaml": b"seed: \xff\xfe\n"}, ("not utf-8",)),
    Case("yaml-syntax", ["config", "-c", "{tmp}/c.yaml"], {"c.yaml": "rl: [\n"}, ("c.yaml", "line")),
    Case("yaml-list-top", ["config", "-c", "{tmp}/c.yaml"], {"c.yaml": "- 1\n"}, ("mapping",), lines=1),
    Case("config-missing", ["config", "-c", "{tmp}/none.yaml"], {}, ("none.yaml", "does not exist"), lines=1),
    Case("config-is-folder", ["config", "-c", "{tmp}"], {}, ("does not exist",), lines=1),
    Case(
        "huge-value-not-echoed",
        ["config", "--set", "task.difficulties=" + "x" * 3_000_000],
        {},
        ("task.difficulties",),
    ),
    Case(
        "max-new-tokens-unbounded",
        ["config", "--set", "rollout_sampling.max_new_tokens=1000000000"],
        {},
        ("max_new_tokens", "less than or equal"),
    ),
    Case("train-size-unbounded", ["config", "--set", "task.train_size=99999999999"], {}, ("train_size",)),
    Case("nan", ["config", "--set", "rl.omega=.nan"], {}, ("rl.omega", "finite")),
    Case("infinite", ["config", "--set", "eval_sampling.temperature=.inf"], {}, ("temperature", "finite")),
    Case("negative-seed", ["config", "--set", "seed=-1"], {}, ("seed", "greater than or equal")),
    Case(
        "override-bad-yaml", ["config", "--set", "seed=["], {}, ("override 'seed'", "not valid yaml"), lines=1
    ),
    Case("override-no-equals", ["config", "--set", "seed"], {}, ("section.field=value",), lines=1),
    Case("override-into-value", ["config", "--set", "seed.x=1"], {}, ("field 'seed'", "valid integer")),
    Case("unknown-preset", ["config", "--preset", "nope"], {}, ("invalid choice: 'nope'",)),
    Case(
        "batch-size-zero",
        ["data", "generate", "--out", "{tmp}/o", "--batch-size", "0"],
        {},
        ("--batch-size", "at least 1"),
    ),
    Case(
        "batch-size-negative",
        ["data", "generate", "--out", "{tmp}/o", "--batch-size", "-1"],
        {},
        ("--batch-size", "at least 1"),
    ),
    Case(
        "batch-size-text",
        ["data", "generate", "--out", "{tmp}/o", "--batch-size", "many"],
        {},
        ("--batch-size", "not an integer"),
    ),
    Case("sample-n-zero", ["sample", "--n", "0"], {}, ("--n", "at least 1")),
]

OUT_CASES = [
    Case(
        "generate-out-s3",
        ["data", "generate", "--out", "s3://bucket/prefix"],
        {},
        ("s3://bucket/prefix", "local folder only"),
        lines=1,
    ),
    Case(
        "generate-out-other-scheme",
        ["data", "generate", "--out", "gs://bucket/prefix"],
        {},
        ("gs://bucket/prefix", "local folder"),
        lines=1,
    ),
    Case(
        "generate-out-under-file",
        ["data", "generate", "--out", "{tmp}/f/out"],
        {"f": "x"},
        ("f/out", "is a file"),
        lines=1,
    ),
    Case(
        "sft-out-under-file",
        ["train", "sft", "--data", "{tmp}/d", "--out", "{tmp}/f/m"],
        {"f": "x"},
        ("is a file",),
        lines=1,
    ),
    Case(
        "sft-out-s3",
        ["train", "sft", "--data", "{tmp}/d", "--out", "s3://b/m"],
        {},
        ("local folder only",),
        lines=1,
    ),
    Case(
        "rl-out-under-file",
        ["train", "rl", "--policy", "{model}", "--out", "{tmp}/f/m"],
        {"f": "x"},
        ("is a file",),
        lines=1,
    ),
    Case(
        "rl-out-bad-s3",
        ["train", "rl", "--policy", "{model}", "--out", "s3://bucket"],
        {},
        ("malformed s3 uri",),
        lines=1,
    ),
    Case(
        "evaluate-out-s3",
        ["evaluate", "--model", "scripted", "--out", "s3://b/e"],
        {},
        ("local folder only",),
        lines=1,
    ),
    Case("signal-out-file", ["signal", "--out", "{tmp}/f"], {"f": "x"}, ("is a file",), lines=1),
    Case("run-out-s3", ["run", "--out", "s3://b/r"], {}, ("local folder only",), lines=1),
    Case(
        "validate-report-under-file",
        ["data", "validate", "{tmp}/d", "--report", "{tmp}/f/r"],
        {"f": "x"},
        ("is a file",),
        lines=1,
    ),
]


@pytest.mark.parametrize("case", [*CONFIG_CASES, *OUT_CASES], ids=lambda c: c.name)
def test_config_and_paths_refused(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, tmp_path / "no-model", capsys)
