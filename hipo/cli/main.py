"""The `hipo` command line. Every subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Literal

from hipo import __version__
from hipo.cli.parsing import EXAMPLES, CliParser, key_value, model_version
from hipo.config import ConfigError, RunConfig, load_config, preset_names
from hipo.storage import local_dir


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        metavar="NAME",
        help=f"a run configuration shipped with hipo: {', '.join(preset_names())} (--config goes on top)",
    )
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="YAML run configuration (the defaults when omitted)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one field, e.g. --set rl.omega=0.1 (repeatable)",
    )


def _load(args: argparse.Namespace, overrides: list[str] | None = None) -> RunConfig:
    """The run configuration of --preset, --config and --set (or ``overrides`` in place of --set)."""
    return load_config(args.config, args.overrides if overrides is None else overrides, args.preset)


def _cmd_config(args: argparse.Namespace) -> int:
    config = _load(args)
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


def _cmd_signal(args: argparse.Namespace) -> int:
    from hipo.train.signal_table import run_signal_table

    out = local_dir(args.out, "--out")
    run_signal_table(_load(args), out, problems_per_level=args.problems_per_level)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hipo.pipeline.run import run_local

    result = run_local(_load(args), local_dir(args.out, "--out"), arms=args.arms, verbose=args.verbose)
    print(result.summary)
    print(f"report: {result.report}")
    if result.comparison:
        print(result.comparison_summary)
        print(f"comparison report: {result.comparison}")
    aliases = ", ".join(result.aliases) or "none"
    print(f"registered model: {result.model_name} v{result.version} (aliases: {aliases})")
    print(f"MLflow: run {result.run_dir.name} ({result.mlflow_run_id}) in {result.tracking_uri}")
    print(f"artifacts: {result.run_dir}")
    print(f"step logs: {result.logs}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from hipo.pipeline.run import compile_pipeline

    selector = dict(args.gpu_node_selector)
    settings = {"accelerator": args.accelerator, "image_pull_secrets": tuple(args.image_pull_secret)}
    if args.gpu_node_selector:
        settings["gpu_node_selector"] = selector
    for kind in ("step", "train"):
        if getattr(args, f"{kind}_image"):
            settings[f"{kind}_image"] = getattr(args, f"{kind}_image")
    if args.api_key_env:
        from pipelines.hipo_pipeline import preset_key_variables

        settings["api_key_env"] = tuple(sorted({*preset_key_variables(), *args.api_key_env}))
    if args.step_request or args.step_limit:
        from pipelines.hipo_pipeline import STEP_LIMITS, STEP_REQUESTS

        settings["step_requests"] = {**STEP_REQUESTS, **dict(args.step_request)}
        settings["step_limits"] = {**STEP_LIMITS, **dict(args.step_limit)}
    print(f"compiled {compile_pipeline(args.out, **settings)}")
    return 0


def _add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    """``hipo run`` (the DAG through kfp.local) and ``hipo compile`` (the DAG for a cluster)."""
    from hipo.pipeline.run import COMPILED  # light: kfp is imported when a command runs

    p = sub.add_parser(
        "run",
        help="run the whole pipeline on this machine (kfp.local), the embedded default",
        description="Run the whole pipeline on this machine (kfp.local): one line per step as it\n"
        "starts and ends; each step's whole output goes to <run>/logs/<step>.log.",
        epilog="examples:\n  hipo run --preset demo --arms baseline --out runs/demo\n"
        "  hipo run --set rl.steps=20 --set seed=1 -v",
    )
    _add_config_args(p)
    p.add_argument(
        "--out", default="runs/local", help="run directory: artifacts/<run>/ holds each step's outputs"
    )
    p.add_argument(
        "--arms",
        choices=("hipo", "baseline", "all"),
        default="hipo",
        help="hipo: the main line; baseline: + Cold-Start (on); all: the paper's five arms",
    )
    p.add_argument(
        "--verbose", "-v", action="store_true", help="show every step's whole output, not the progress view"
    )
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("compile", help="compile the pipeline for a cluster (GPU requests, Secrets by name)")
    p.add_argument("--out", default=str(COMPILED), help="where to write the pipeline YAML")
    p.add_argument("--accelerator", default="nvidia.com/gpu", help="GPU resource name of the training steps")
    p.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        type=key_value,
        metavar="KEY=VALUE",
        help="node label the training pods require (repeatable; default nvidia.com/gpu.present=true)",
    )
    p.add_argument(
        "--image-pull-secret",
        action="append",
        default=[],
        metavar="NAME",
        help="Secret the pods pull the images with (repeatable)",
    )
    p.add_argument(
        "--api-key-env",
        action="append",
        default=[],
        metavar="NAME",
        help="another API key variable the steps read from the api_key_secret (repeatable; the presets' "
        "teacher and judge keys are always mapped)",
    )
    for kind, default in (("request", "cpu=1 memory=4Gi"), ("limit", "cpu=4 memory=16Gi")):
        p.add_argument(
            f"--step-{kind}",
            action="append",
            default=[],
            type=key_value,
            metavar="cpu|memory=QUANTITY",
            help=f"each step pod's CPU or memory {kind}, e.g. memory=8Gi (repeatable; default {default})",
        )
    for kind in ("step", "train"):
        p.add_argument(
            f"--{kind}-image-digest",
            dest=f"{kind}_image",
            type=_pinned_image(kind),
            metavar="sha256:DIGEST",
            help=f"pin the {kind} image to this digest (as `docker push` printed it); default: the tag",
        )
    p.set_defaults(func=_cmd_compile)


def _pinned_image(kind: str) -> Callable[[str], str]:
    """argparse type: a digest of the ``kind`` image → that image pinned by digest."""
    from hipo.launch import images

    image = images.STEP_IMAGE if kind == "step" else images.TRAIN_IMAGE

    def parse(digest: str) -> str:
        try:
            return images.pinned(image, digest)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _cmd_data_generate(args: argparse.Namespace) -> int:
    from hipo.data.run import generate

    local_dir(args.out, "--out")
    stats = generate(_load(args), args.out, batch_size=args.batch_size)
    print(
        json.dumps({k: stats[k] for k in ("queries", "dropped", "splits", "seconds")}, indent=2, default=str)
    )
    print(f"datasets in {args.out}/mix (Cold-Start mix) and {args.out}/on (Cold-Start on)", file=sys.stderr)
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from hipo.quality import GateFailed, check, validate_dataset, write_report

    if args.report:
        local_dir(args.report, "--report", s3=True)
    result = validate_dataset(args.dataset, _load(args).quality)
    paths = write_report(result, args.report) if args.report else {}
    try:
        check(result)
    except GateFailed as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 1
    print(f"quality gate passed ({args.dataset})" + (f"; report: {paths['report.html']}" if paths else ""))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hipo.evaluate.compare import evaluate_models

    overrides = [*args.overrides, *([f"eval.engine={args.engine}"] if args.engine else [])]
    config = _load(args, overrides)
    names = args.name or [Path(m).name for m in args.model]
    if len(names) != len(args.model):
        raise ConfigError(f"give one --name per --model: models {args.model}, names {names}")
    local_dir(args.out, "--out")
    models = dict(zip(names, args.model, strict=True))
    if len(models) != len(names):
        raise ConfigError(f"give each --model a distinct --name, got {names}")
    _, files = evaluate_models(
        config, models, args.out, labels=args.labels, title=args.title, earlier=args.reuse
    )
    print(json.dumps(files, indent=2))
    return 0


def _train(
    stage: Literal["sft", "rl"], config: RunConfig, source: str, out: str, cache_dir: str | None = None
) -> int:
    """Train ``stage`` as ``hipo run`` does: here, or under torchrun for ``launch.procs_per_node``."""
    from hipo.launch import LaunchError
    from hipo.launch.local import run_stage

    try:
        run_stage(stage, config, source, out, cache_dir)
    except LaunchError as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 1
    return 0


def _cmd_train_sft(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *([f"model.base={json.dumps(args.base)}"] if args.base else [])]
    config = _load(args, overrides)
    local_dir(args.out, "--out")
    return _train("sft", config, args.data, args.out, args.cache_dir)


def _cmd_train_rl(args: argparse.Namespace) -> int:
    config = _load(args)
    local_dir(args.out, "--out", s3=True)
    return _train("rl", config, args.policy, args.out)


def _add_train_commands(train: argparse._SubParsersAction) -> None:
    """``hipo train sft`` (and the other training stages, each one subcommand of ``hipo train``)."""
    p = train.add_parser("sft", help="cold-start SFT on a hybrid dataset (torchrun / DeepSpeed aware)")
    _add_config_args(p)
    p.add_argument("--data", required=True, help="dataset directory or s3:// prefix (train/eval files)")
    p.add_argument("--out", required=True, help="checkpoint directory (save_pretrained + metrics.jsonl)")
    p.add_argument("--base", help="base policy: tiny, smollm2, a directory, s3:// or a hub id (model.base)")
    p.add_argument("--cache-dir", help="where converted / downloaded base models are kept")
    p.set_defaults(func=_cmd_train_sft)
    p = train.add_parser("rl", help="HiPO / GRPO RL from a policy checkpoint (torchrun aware, resumes)")
    _add_config_args(p)
    p.add_argument("--policy", required=True, help="policy: a directory, s3:// prefix, tiny or smollm2")
    p.add_argument("--out", required=True, help="output directory or s3:// prefix (a rerun resumes there)")
    p.set_defaults(func=_cmd_train_rl)


def _cmd_promote(args: argparse.Namespace) -> int:
    from hipo.registry import promote

    previous = promote(args.name, args.version, args.reason, tracking_uri=_registry(args))
    print(f"{args.name}: champion is v{args.version}" + (f" (was v{previous})" if previous else ""))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from hipo.registry import rollback

    restored = rollback(args.name, args.reason, tracking_uri=_registry(args))
    print(f"{args.name}: champion rolled back to v{restored}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from hipo.registry import describe

    print(describe(args.name, tracking_uri=_registry(args)).to_text())
    return 0


def _registry(args: argparse.Namespace) -> str:
    """The registry a command works on (said on stderr); an error, not a new empty one, when the
    local registry does not exist."""
    from hipo.registry.client import require_registry, resolve_uri

    uri = resolve_uri(args.tracking_uri)
    print(f"registry: {uri}", file=sys.stderr)
    require_registry(uri)
    return uri


def _add_registry_commands(sub: argparse._SubParsersAction) -> None:
    """``hipo promote``, ``hipo rollback``, ``hipo models``: the MLflow registry's champion alias."""
    for command, help_text, func in (
        ("promote", "make a model version the champion (bypasses the gate; audited)", _cmd_promote),
        ("rollback", "move the champion back to the version it replaced", _cmd_rollback),
        ("models", "list a registered model's versions, aliases, gate decisions and metrics", _cmd_models),
    ):
        p = sub.add_parser(command, help=help_text)
        p.add_argument("name", help="registered model name (registry.model_name)")
        if command == "promote":
            p.add_argument("version", type=model_version, help="model version: 3 or v3")
        if command != "models":
            p.add_argument("--reason", default=f"manual {command}", help="recorded in the audit tags")
        p.add_argument(
            "--tracking-uri",
            help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else runs/mlflow.db here)",
        )
        p.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    from hipo.cli.remote import add_remote_commands

    parser = CliParser(prog="hipo", description=__doc__, epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"hipo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="print the effective run configuration (validates it)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("sample", help="print scripted-teacher responses in both modes (JSON lines)")
    p.add_argument("--n", type=_positive_int, default=5, help="number of problems")
    p.add_argument("--seed", type=int, default=0, help="seed of the problems and the teacher")
    p.set_defaults(func=_cmd_sample)

    data = sub.add_parser("data", help="the hybrid data pipeline").add_subparsers(dest="data", required=True)
    p = data.add_parser("generate", help="teacher samples, mode choice, rationales → cold-start datasets")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output directory (a rerun resumes there)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="queries per teacher call")
    p.set_defaults(func=_cmd_data_generate)
    p = data.add_parser("validate", help="the great-expectations quality gate over a dataset directory")
    _add_config_args(p)
    p.add_argument("dataset", help="directory (or s3:// prefix) holding train.parquet and eval.parquet")
    p.add_argument("--report", help="write result.json and report.html here")
    p.set_defaults(func=_cmd_data_validate)

    train = sub.add_parser("train", help="training stages").add_subparsers(dest="train", required=True)
    _add_train_commands(train)

    p = sub.add_parser("signal", help="cold-start data, its quality gate and the HiPO signal per difficulty")
    _add_config_args(p)
    p.add_argument("--problems-per-level", type=_positive_int, default=200, help="problems per difficulty")
    p.add_argument("--out", default="runs/signal", help="where it writes its datasets and reports")
    p.set_defaults(func=_cmd_signal)

    p = sub.add_parser("evaluate", help="benchmark models; write report.html, summary.md, metrics.json")
    _add_config_args(p)
    p.add_argument(
        "--model", action="append", required=True, help="model directory, or 'scripted' (repeatable)"
    )
    p.add_argument(
        "--name", action="append", default=[], help="display name per --model, e.g. 'Cold-Start (on)'"
    )
    p.add_argument(  # the config checks the name against hipo/engines/registry.py
        "--engine", metavar="NAME", help="what serves the checkpoints (eval.engine): hf, vllm or yours"
    )
    p.add_argument("--out", required=True, help="output directory (a rerun resumes there)")
    p.add_argument("--labels", help="dataset directory or eval file with prompt and preferred_mode columns")
    p.add_argument("--title", default="HiPO evaluation", help="the report's title")
    p.add_argument(
        "--reuse", metavar="DIR", help="an earlier evaluate --out: same model files and settings are copied"
    )
    p.set_defaults(func=_cmd_evaluate)
    _add_registry_commands(sub)
    _add_pipeline_commands(sub)
    add_remote_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hipo.launch.entry import training_errors
    from hipo.pipeline.run import PipelineFailed
    from hipo.registry import RegistryError
    from hipo.remote.package import RemoteError

    try:
        return args.func(args)
    except (*training_errors(), RegistryError, RemoteError, PipelineFailed) as error:
        print(f"hipo: {_short(error)}", file=sys.stderr)
        return 2


MAX_ERROR_LINES, MAX_ERROR_LINE = 8, 400


def _short(error: Exception) -> str:
    """The error's message in at most ``MAX_ERROR_LINES`` lines of ``MAX_ERROR_LINE`` characters: a
    message never echoes a large input back."""
    if isinstance(error, OSError) and error.strerror and type(error).__str__ is OSError.__str__:
        where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        text = f"{where}: {error.strerror}" if where else error.strerror
    else:
        text = str(error) or type(error).__name__
    lines = [
        line if len(line) <= MAX_ERROR_LINE else line[: MAX_ERROR_LINE - 1] + "…"
        for line in text.splitlines()
    ]
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[: MAX_ERROR_LINES - 1], f"... and {len(lines) - MAX_ERROR_LINES + 1} more lines"]
    return "\n".join(lines)
