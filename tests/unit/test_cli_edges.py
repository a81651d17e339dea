"""The `hipo` command line's own edges, through its installed entry point: version, help, usage errors
reported by the subcommand that got them, and the local registry's location."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hipo
from hipo.cli import build_parser, main
from hipo.config import preset_names

HIPO = str(Path(sys.executable).parent / "hipo")  # the console script pip installed


def hipo_cli(*args, cwd=None):
    return subprocess.run([HIPO, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_version():
    done = hipo_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"hipo {hipo.__version__}"


def test_help_shows_defaults_examples_and_the_presets(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    top = capsys.readouterr().out
    assert "examples:" in top and "hipo run --preset demo --arms baseline --out runs/demo" in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: runs/local)" in run and "(default: hipo)" in run and "examples:" in run
    assert ", ".join(preset_names()) in run and "demo" in preset_names()
    assert "(default: None)" not in run


def _leaf_parsers(parser: argparse.ArgumentParser, path: str = "hipo"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_parsers(sub, f"{path} {name}")
    yield path, parser


def test_every_option_of_every_command_has_help_text():
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _leaf_parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_an_unknown_preset_is_refused_with_the_presets_listed():
    done = hipo_cli("config", "--preset", "nope")
    assert done.returncode == 2 and "invalid choice: 'nope' (choose from 'demo', " in done.stderr


def test_a_node_selector_without_a_value_is_a_usage_error_not_a_traceback():
    done = hipo_cli("compile", "--gpu-node-selector", "KEY")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: hipo compile")
    assert "hipo compile: error: argument --gpu-node-selector: expected KEY=VALUE, got 'KEY'" in done.stderr


def test_a_node_selector_reaches_the_compiled_pipeline(tmp_path):
    out = tmp_path / "pipeline.yaml"
    assert main(["compile", "--gpu-node-selector", "pool=a100", "--out", str(out)]) == 0
    assert re.search(r"""["']?pool["']?: ["']?a100""", out.read_text())  # a YAML or JSON mapping


def test_an_unknown_option_gets_the_subcommands_usage_and_a_suggestion():
    done = hipo_cli("run", "--output", "x")
    assert done.returncode == 2 and done.stderr.startswith("usage: hipo run ")
    assert "hipo run: error: unrecognized arguments: --output x (did you mean --out?)" in done.stderr


@pytest.mark.parametrize("version", ["v1", "1", "V12"])
def test_promote_takes_a_version_as_the_cli_prints_it(version):
    args = build_parser().parse_args(["promote", "hipo-policy", version])
    assert args.version == version.lstrip("vV")


def test_promote_refuses_a_version_that_is_not_a_number():
    done = hipo_cli("promote", "hipo-policy", "latest")
    assert done.returncode == 2 and done.stderr.startswith("usage: hipo promote")
    assert "expected a version number such as 3 or v3, got 'latest'" in done.stderr


def test_models_without_a_local_registry_says_where_it_looked_and_creates_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [HIPO, "models", "hipo-policy"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    db = tmp_path / "runs" / "mlflow.db"
    assert done.returncode == 2
    assert f"registry: sqlite:///{db}" in done.stderr and f"no MLflow registry at {db}" in done.stderr
    assert list(tmp_path.iterdir()) == []
