"""The `hipo` command line (the console script's package): only the console script and tests import it."""

from hipo.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
