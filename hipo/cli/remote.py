"""``hipo submit | schedule | runs | unschedule``: the compiled pipeline on a Kubeflow Pipelines server."""

from __future__ import annotations

import argparse
from datetime import datetime

from hipo.remote import client as remote
from hipo.remote.package import DEFAULT_PACKAGE


def _add_common(p: argparse.ArgumentParser, package: bool = True) -> None:
    p.add_argument(
        "--host", required=True, help="KFP API address, e.g. http://localhost:8080 (KFP_TOKEN: auth)"
    )
    p.add_argument("--namespace", help="multi-user KFP: your Kubeflow profile namespace")
    if package:
        p.add_argument("--experiment", default=remote.DEFAULT_EXPERIMENT, help="created if missing")
        p.add_argument(
            "--param",
            dest="params",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="pipeline parameter, converted to its declared type; lists/structs as JSON (repeatable)",
        )
        p.add_argument("--package", default=str(DEFAULT_PACKAGE), help="compiled pipeline YAML")


def _cmd_submit(args: argparse.Namespace) -> int:
    run = remote.submit(
        args.host, args.package, args.params, args.experiment, args.run_name, namespace=args.namespace
    )
    print(f"run {run.run_id} submitted to experiment '{args.experiment}'")
    print(run.url)
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    rr = remote.schedule(
        args.host, args.cron, args.package, args.params, args.name, args.experiment,
        args.max_concurrency, args.no_catchup, namespace=args.namespace,
    )  # fmt: skip
    catchup = "no catch-up" if rr.no_catchup else "catch-up"
    print(f"recurring run {rr.recurring_run_id} '{rr.name}' scheduled: {rr.schedule}, "
          f"max concurrency {rr.max_concurrency}, {catchup}")  # fmt: skip
    return 0


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _cmd_runs(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    runs, recurring = remote.list_runs(args.host, args.experiment, args.limit, namespace=args.namespace)
    print("Runs")
    rows = [(r.run_id, r.name, r.state, _when(r.created), _when(r.finished)) for r in runs]
    print(tabulate(rows, headers=("id", "name", "state", "created", "finished")) if rows else "(none)")
    print("\nRecurring runs")
    rows = [(rr.recurring_run_id, rr.name, rr.schedule, "yes" if rr.enabled else "no") for rr in recurring]
    print(tabulate(rows, headers=("id", "name", "cron", "enabled")) if rows else "(none)")
    return 0


def _cmd_unschedule(args: argparse.Namespace) -> int:
    rr = remote.unschedule(args.host, args.name_or_id, namespace=args.namespace)
    print(f"recurring run {rr.recurring_run_id} '{rr.name}' disabled and deleted")
    return 0


def add_remote_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run the compiled pipeline on a KFP server; prints the run id and URL")
    _add_common(p)
    p.add_argument("--run-name", help="display name (default: pipeline name and time)")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("schedule", help="a recurring run of the compiled pipeline on a KFP server")
    _add_common(p)
    p.add_argument("--cron", required=True, help="six fields, seconds first: '0 0 3 * * 0' = Sundays 03:00")
    p.add_argument("--name", help="recurring run name (default: the pipeline's name)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs at once, 1-10")
    p.add_argument("--no-catchup", action="store_true", help="after a pause, run once, not every missed slot")
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("runs", help="recent runs and recurring runs on a KFP server")
    _add_common(p, package=False)
    p.add_argument("--experiment", help="only this experiment")
    p.add_argument("--limit", type=int, default=20, help="newest N of each")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("unschedule", help="disable and delete a recurring run (by id or unique name)")
    _add_common(p, package=False)
    p.add_argument("name_or_id", metavar="NAME_OR_ID", help="the recurring run's id or its unique name")
    p.set_defaults(func=_cmd_unschedule)
