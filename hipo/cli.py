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

    run_demo(load_config(args.config, args.overrides), args.out, problems_per_level=args.problems_per_level)
    return 0


def _cmd_data_generate(args: argparse.Namespace) -> int:
    from hipo.data.run import generate

    stats = generate(load_config(args.config, args.overrides), args.out, batch_size=args.batch_size)
    print(
        json.dumps({k: stats[k] for k in ("queries", "dropped", "splits", "seconds")}, indent=2, default=str)
    )
    print(f"datasets in {args.out}/mix (Cold-Start mix) and {args.out}/on (Cold-Start on)", file=sys.stderr)
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from hipo.quality import GateFailed, check, validate_dataset, write_report

    result = validate_dataset(args.dataset, load_config(args.config, args.overrides).quality)
    paths = write_report(result, args.report) if args.report else {}
    try:
        check(result)
    except GateFailed as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 1
    print(f"quality gate passed ({args.dataset})" + (f"; report: {paths['report.html']}" if paths else ""))
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

    data = sub.add_parser("data", help="the hybrid data pipeline").add_subparsers(dest="data", required=True)
    p = data.add_parser("generate", help="teacher samples, mode choice, rationales → cold-start datasets")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output directory (a rerun resumes there)")
    p.add_argument("--batch-size", type=int, default=256, help="queries per teacher call")
    p.set_defaults(func=_cmd_data_generate)
    p = data.add_parser("validate", help="the great-expectations quality gate over a dataset directory")
    _add_config_args(p)
    p.add_argument("dataset", help="directory (or s3:// prefix) holding train.parquet and eval.parquet")
    p.add_argument("--report", help="write result.json and report.html here")
    p.set_defaults(func=_cmd_data_validate)

    p = sub.add_parser("demo", help="the main job on the embedded default")
    _add_config_args(p)
    p.add_argument("--problems-per-level", type=int, default=200)
    p.add_argument("--out", default="runs/demo", help="where the demo writes its datasets and reports")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hipo.engines.base import EngineError
    from hipo.quality.load import DatasetError
    from hipo.storage import StorageError
    from hipo.tasks import TaskError

    try:
        return args.func(args)
    except (ConfigError, TaskError, EngineError, StorageError, DatasetError) as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
