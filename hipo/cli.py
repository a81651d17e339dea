"""The `hipo` command line. Every subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hipo.config import ConfigError, load_config


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML run configuration (defaults when omitted)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one field, e.g. --set rl.omega=0.1 (repeatable)",
    )


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    print(config.to_yaml(), end="")
    print(f"# config hash: {config.config_hash()}", file=sys.stderr)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import random

    from hipo.tasks import get_task
    from hipo.tasks.teacher import ScriptedTeacher

    task = get_task("arithmetic")
    teacher = ScriptedTeacher(seed=args.seed)
    rng = random.Random(args.seed)
    for problem in task.problems("eval", args.n, args.seed):
        for mode in ("off", "on"):
            response = teacher.respond(problem, mode, rng)
            print(
                json.dumps({"id": problem.id, "prompt": problem.prompt, "mode": mode, "response": response})
            )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hipo.demo import run_demo

    run_demo(load_config(args.config, args.overrides), problems_per_level=args.problems_per_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hipo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="print the effective run configuration (validates it)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("sample", help="print scripted-teacher responses in both modes (JSON lines)")
    p.add_argument("--n", type=int, default=5, help="number of problems")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("demo", help="the main job on the embedded default")
    _add_config_args(p)
    p.add_argument("--problems-per-level", type=int, default=200)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
