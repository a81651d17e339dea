"""A corpus of bad inputs driven through the real ``hipo`` entry point (in process): each one is refused
with a short message that names the input and the problem, exit status 2 (1 for a failed quality
gate), and no traceback; or it is accepted on purpose, which the case says.

Cases are built in ``tmp_path`` by small writers; the model folders come from the session's tiny model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quality_dataset import build_good_rows, write_dataset

from hipo import template
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
    try:  # an exception escaping main (a traceback on the command line) fails the test here
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses malformed options itself
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == case.code, f"exit {code}, stderr: {err[-2000:]}"
    message = err.splitlines()[-case.lines :] if code != 1 else err.splitlines()
    assert len("\n".join(message)) < 1500, "the message echoes a large input"
    assert any(line.startswith("hipo") for line in message), message  # hipo's own line, not a library's
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
    Case("bool-seed", ["config", "-c", "{tmp}/c.yaml"], {"c.yaml": "seed: true\n"}, ("'seed'", "true/false")),
    Case("bool-float", ["config", "--set", "rl.omega=false"], {}, ("'rl.omega'", "true/false")),
    Case(
        "bool-in-int-list",
        ["config", "--set", "task.difficulties=[1,true]"],
        {},
        ("difficulties", "true/false"),
    ),
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

CONFIG_CASES += [
    Case(
        "quality-range-inverted",
        ["config", "--set", "quality.min_think_on_share=0.99"],
        says=("min_think_on_share must not exceed max_think_on_share",),
    ),
    Case(
        "config-file-huge",
        ["config", "-c", "{tmp}/c.yaml"],
        {"c.yaml": "# padding\n" * 200_000},
        says=("c.yaml holds 2,000,000 bytes",),
        lines=1,
    ),
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


TINY_DATA = [
    "data",
    "generate",
    "--out",
    "{tmp}/o",
    "--set",
    "task.train_size=5",
    "--set",
    "task.eval_size=2",
]
OPENAI = ["--set", "data.teacher=openai", "--set", "data.teacher_endpoint.model=m"]
SOURCE_CASES = [
    Case(
        "endpoint-url-scheme",
        [*TINY_DATA, *OPENAI, "--set", "data.teacher_endpoint.base_url=htp://x"],
        says=("base_url", "should match pattern"),
    ),
    Case(
        "endpoint-unreachable",
        [
            *TINY_DATA,
            *OPENAI,
            "--set",
            "data.teacher_endpoint.base_url=http://127.0.0.1:9/v1",
            "--set",
            "data.teacher_endpoint.max_retries=0",
        ],
        says=("http://127.0.0.1:9/v1", "connection error"),
        lines=1,
    ),
    Case(
        "teacher-hf-without-model",
        [*TINY_DATA, "--set", "data.teacher=hf"],
        says=("data.teacher_model",),
        lines=1,
    ),
    Case(
        "teacher-model-not-a-folder",
        [*TINY_DATA, "--set", "data.teacher=hf", "--set", "data.teacher_model={tmp}/none"],
        says=("not a model directory",),
        lines=1,
    ),
    Case(
        "task-dataset-missing",
        [*TINY_DATA, "--set", "task.name=math", "--set", "task.datasets=[{tmp}/none.jsonl]"],
        says=("none.jsonl", "no such file"),
        lines=1,
    ),
    Case(
        "benchmark-missing",
        [
            "evaluate",
            "--model",
            "scripted",
            "--out",
            "{tmp}/e",
            "--set",
            "eval.benchmarks=[{tmp}/none.jsonl]",
        ],
        says=("no such file",),
        lines=1,
    ),
    Case(
        "labels-missing",
        ["evaluate", "--model", "scripted", "--out", "{tmp}/e", "--labels", "{tmp}/none"],
        says=("none", "no eval.parquet"),
        lines=1,
    ),
    Case(
        "reuse-missing",
        ["evaluate", "--model", "scripted", "--out", "{tmp}/e", "--reuse", "{tmp}/none"],
        says=("none: no such folder",),
        lines=1,
    ),
    Case(
        "evaluate-same-name-twice",
        ["evaluate", "--model", "scripted", "--model", "scripted", "--out", "{tmp}/e"],
        says=("distinct --name",),
        lines=1,
    ),
    Case(
        "evaluate-model-s3",
        ["evaluate", "--model", "s3://b/m", "--out", "{tmp}/e"],
        says=("model folder s3://b/m", "local folders only"),
        lines=1,
    ),
    Case(
        "sft-data-is-file",
        ["train", "sft", "--data", "{tmp}/f", "--out", "{tmp}/o"],
        {"f": "x"},
        says=("is a file",),
        lines=1,
    ),
    Case(
        "sft-data-empty-folder",
        ["train", "sft", "--data", "{tmp}", "--out", "{tmp}/o"],
        says=("no train split",),
        lines=1,
    ),
    Case(
        "sft-data-bad-s3",
        ["train", "sft", "--data", "s3://", "--out", "{tmp}/o"],
        says=("dataset s3://", "no train split"),
        lines=1,
    ),
]


@pytest.mark.parametrize("case", [*CONFIG_CASES, *OUT_CASES, *SOURCE_CASES], ids=lambda c: c.name)
def test_config_and_paths_refused(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, tmp_path / "no-model", capsys)


def _other_tokenizer(hipo_tokens: bool):
    from hipo import template
    from hipo.config import ModelConfig
    from hipo.models.tiny import build_tiny

    _, tokenizer = build_tiny(ModelConfig(tiny_hidden=16), corpus=["user assistant What is 1 + 2?"] * 20)
    if hipo_tokens:
        template.add_hipo_tokens(tokenizer)
    return tokenizer


def broken_model(how: str) -> Callable[[Path], None]:
    """A setup that breaks the copy of the tiny HiPO model in ``{tmp}/m`` in one way."""

    def setup(tmp: Path) -> None:
        m = tmp / "m"
        write_dataset(build_good_rows(n_train=20, n_eval=5), tmp / "d")
        if how == "config-only":
            for f in m.iterdir():
                if f.name != "config.json":
                    f.unlink()
        elif how == "truncated-weights":
            data = (m / "model.safetensors").read_bytes()
            (m / "model.safetensors").write_bytes(data[: len(data) // 2])
        elif how == "garbage-weights":
            (m / "model.safetensors").write_bytes(b"\x00garbage" * 1000)
        elif how == "invalid-config":
            (m / "config.json").write_text("{not json")
        elif how == "weights-not-config":
            config = json.loads((m / "config.json").read_text())
            (m / "config.json").write_text(json.dumps({**config, "intermediate_size": 100}))
        elif how == "config-without-type":
            (m / "config.json").write_text('{"hidden_size": 64}')
        elif how == "no-tokenizer":
            for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
                (m / name).unlink()
        elif how == "no-chat-template":
            (m / "chat_template.jinja").unlink()
        elif how in ("no-hipo-tokens", "other-tokenizer"):
            (m / "chat_template.jinja").unlink()
            _other_tokenizer(hipo_tokens=how == "other-tokenizer").save_pretrained(m)
        elif how == "is-a-file":
            shutil.rmtree(m)
            m.write_text("not a folder")

    return setup


MODEL_FAULTS = {
    "config-only": "no weights",
    "truncated-weights": "truncated",
    "garbage-weights": "not a safetensors file",
    "invalid-config": "config.json is not a valid model configuration",
    "config-without-type": "config.json is not a valid model configuration",
    "weights-not-config": "weights do not fit its config.json",
    "no-tokenizer": "tokenizer cannot be loaded",
    "is-a-file": "is a file",
}
HIPO_FAULTS = {
    "no-chat-template": "no chat template",
    "no-hipo-tokens": "lacks the hipo tokens",
    "other-tokenizer": "checkpoint from another model",
}
COMMANDS = {
    "evaluate": ["evaluate", "--model", "{tmp}/m", "--out", "{tmp}/e", "--set", "eval.max_problems=2"],
    "rl": ["train", "rl", "--policy", "{tmp}/m", "--out", "{tmp}/o", "--set", "rl.steps=1"],
    "sft": [
        "train",
        "sft",
        "--base",
        "{tmp}/m",
        "--data",
        "{tmp}/d",
        "--out",
        "{tmp}/o",
        "--set",
        "sft.steps=1",
    ],
}
MODEL_CASES = [
    Case(f"{command}-{how}", argv, says=("model folder", "/m", fault), setup=broken_model(how), lines=1)
    for command, argv in COMMANDS.items()
    for how, fault in (MODEL_FAULTS | (HIPO_FAULTS if command != "sft" else {})).items()
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.name)
def test_unusable_model_folders_refused(
    case: Case, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    run_case(case, tmp_path, tiny_model_dir, capsys)


def dataset(change: Callable[[pd.DataFrame], pd.DataFrame] | None = None, suffix: str = ".parquet"):
    """A setup writing a small good dataset to ``{tmp}/d``, each split passed through ``change``."""

    def setup(tmp: Path) -> None:
        frames = build_good_rows(n_train=40, n_eval=10)
        write_dataset({s: change(f.copy()) if change else f for s, f in frames.items()}, tmp / "d", suffix)

    return setup


def with_judge(judge: Callable[[pd.Series], str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        responses = []
        for _, row in frame.iterrows():
            parsed = template.parse(row["response"])
            responses.append(template.render(row["mode"], judge(row), parsed.answer, parsed.think))
        return frame.assign(response=responses)

    return change


def not_utf8(tmp: Path) -> None:
    dataset(suffix=".jsonl")(tmp)
    path = tmp / "d" / "train.jsonl"
    path.write_bytes(path.read_bytes().replace(b"What", b"Wh\xe9t", 1))


def binary_not_utf8(tmp: Path) -> None:
    dataset()(tmp)
    path = tmp / "d" / "train.parquet"
    table = pq.read_table(path)
    prompts = pa.array([p.encode() + b"\xff" for p in table.column("prompt").to_pylist()], pa.binary())
    pq.write_table(table.set_column(table.schema.get_field_index("prompt"), "prompt", prompts), path)


GATE = ["data", "validate", "{tmp}/d", "--set", "quality.examples_per_failure=1"]
SFT = ["train", "sft", "--data", "{tmp}/d", "--out", "{tmp}/o", "--set", "sft.steps=1"]
DATASET_CASES = [
    Case(
        "gate-5mb-judge-token-count",
        GATE,
        setup=dataset(with_judge(lambda r: "why " * 1_250_000 if r.name == 0 else "short")),
        says=("n_tokens_matches_response",),
        code=1,
    ),
    Case(
        "gate-answer-in-every-judge",
        GATE,
        setup=dataset(with_judge(lambda r: f"It is {r['answer']}.")),
        says=("judge_hides_the_answer",),
        code=1,
    ),
    Case(
        "gate-answer-not-reference",
        GATE,
        setup=dataset(lambda f: f.assign(reference_answer=[str(int(a) + 1) for a in f["answer"]])),
        says=("answer_agrees_with_reference",),
        code=1,
    ),
    Case(
        "gate-list-column",
        GATE,
        setup=dataset(lambda f: f.assign(answer=[[a] for a in f["answer"]])),
        says=("train.parquet", "column 'answer' holds list"),
        lines=1,
    ),
    Case("gate-not-utf8", GATE, setup=not_utf8, says=("train.jsonl", "not utf-8", "line 1"), lines=1),
    Case("gate-binary-not-utf8", GATE, setup=binary_not_utf8, says=("'prompt'", "not utf-8"), lines=1),
    Case("gate-missing", ["data", "validate", "{tmp}/none"], says=("none", "does not exist"), lines=1),
    Case(
        "gate-empty-file",
        GATE,
        files={"d/train.jsonl": "", "d/eval.jsonl": ""},
        says=("empty (0 bytes)",),
        lines=1,
    ),
    Case(
        "gate-not-parquet",
        GATE,
        files={"d/train.parquet": "x", "d/eval.parquet": "x"},
        says=("not a parquet file",),
        lines=1,
    ),
    Case("sft-not-utf8", SFT, setup=not_utf8, says=("train.jsonl", "not utf-8"), lines=1),
    Case(
        "sft-no-judge-span",
        SFT,
        setup=dataset(lambda f: f.assign(response=[r.split("</judge>\n", 1)[1] for r in f["response"]])),
        says=("no well-formed hipo responses", "hipo data validate"),
        lines=1,
    ),
    Case(
        "sft-unclosed-answer",
        SFT,
        setup=dataset(lambda f: f.assign(response=[r.replace("</answer>", "") for r in f["response"]])),
        says=("40 of 40 train rows", "no well-formed"),
        lines=1,
    ),
    Case(
        "sft-mode-column-disagrees",
        SFT,
        setup=dataset(lambda f: f.assign(mode=["on" if m == "off" else "off" for m in f["mode"]])),
        says=("mode column",),
        lines=1,
    ),
    Case(
        "sft-prompt-not-text",
        SFT,
        setup=dataset(lambda f: f.assign(prompt=range(len(f)))),
        says=("column 'prompt' must hold text",),
        lines=1,
    ),
    Case(
        "sft-list-column",
        SFT,
        setup=dataset(lambda f: f.assign(response=[[r] for r in f["response"]])),
        says=("column 'response' holds list",),
        lines=1,
    ),
]


@pytest.mark.parametrize("case", DATASET_CASES, ids=lambda c: c.name)
def test_bad_datasets_refused(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, None, capsys)


def test_the_installed_command_prints_one_line(tmp_path: Path) -> None:
    """The same refusal from the console script in a fresh process: one line on stderr, exit 2."""
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\nrl:\n  omega: 0.1\n  omega: 0.2\n")
    hipo = Path(sys.executable).with_name("hipo")
    done = subprocess.run(
        [str(hipo), "config", "-c", str(config)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    problem = "key 'omega' appears twice in one mapping (line 4, column 3)"
    assert done.stderr == f"hipo: config file {config} is not valid YAML: {problem}\n"
