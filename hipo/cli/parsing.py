"""The argparse pieces of the `hipo` command line: help that shows defaults and examples, errors
reported by the subcommand that was given the bad argument, and argument types with clear errors."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import Any, NoReturn

EXAMPLES = """\
examples:
  hipo run --preset demo --arms baseline --out runs/demo    the demo (what `make demo` runs)
  hipo run --set rl.steps=20 -v                             a short run, every step's output shown
  hipo models hipo-policy                                   versions, aliases, gate decisions
  hipo promote hipo-policy v2 --reason "checked by hand"    make v2 the champion
  hipo config --preset demo                                 the effective configuration
  hipo compile --gpu-node-selector pool=a100                the pipeline for a cluster

Without MLFLOW_TRACKING_URI, runs register in runs/mlflow.db under the current directory."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (where there is one worth showing) and epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands (created through it) share its formatter, and which lets
    the innermost subcommand report unrecognised arguments, with its own usage and a suggestion."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)  # the innermost parser used overwrites its parents' value

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parsed._parser.unrecognized(extras)
        return parsed

    def unrecognized(self, extras: list[str]) -> NoReturn:
        options = [s for action in self._actions for s in action.option_strings]
        unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), "")
        close = difflib.get_close_matches(unknown, options, n=1, cutoff=0.6) if unknown else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def key_value(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE`` with a non-empty key."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def model_version(text: str) -> str:
    """An argparse type: a model version as the CLI prints it (``v3``) or as MLflow numbers it (``3``)."""
    if not re.fullmatch(r"[vV]?\d+", text):
        raise argparse.ArgumentTypeError(f"expected a version number such as 3 or v3, got {text!r}")
    return text.lstrip("vV")
