"""The one module every training process runs: ``python -m hipo.launch.entry STAGE --config-uri URI
--out-uri URI INPUTS`` (under ``torchrun`` for training), on a cluster pod or as a local torchrun rank.

``sft --data URI [--cache-dir DIR]`` and ``rl --policy URI`` train with ``hipo.train`` directly: RL
writes under ``--out-uri`` itself (and resumes from there when the job is retried); SFT writes a local
checkpoint that rank 0 then uploads when ``--out-uri`` is s3://. ``eval`` (``--model URI --name NAME``
per model, ``--labels URI``, ``--reuse URI``, ``--title``, ``--baseline``) downloads the models,
evaluates them with the configured engine and uploads the results folder. The configuration is the
YAML the launcher wrote once; nothing of it travels as options.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hipo.config import RunConfig

TrainStage = Literal["sft", "rl"]
# the option that names what a training stage starts from: a dataset for sft, a policy for rl
SOURCE_OPTION: dict[str, str] = {"sft": "--data", "rl": "--policy"}


def training_errors() -> tuple[type[Exception], ...]:
    """The errors of bad input or a bad machine that a training process reports in one line (exit 2)."""
    from hipo.config import ConfigError
    from hipo.engines.base import EngineError
    from hipo.storage import StorageError
    from hipo.storage.datasets import DatasetError
    from hipo.tasks import TaskError

    # OSError: a path that cannot be read or written is the user's input or machine, not a bug
    return (ConfigError, TaskError, EngineError, StorageError, DatasetError, OSError)


def train_stage(
    stage: TrainStage,
    config: RunConfig,
    source: str,
    out: str | Path,
    cache_dir: str | None = None,
    run_name: str = "",
) -> None:
    """Train ``stage`` from ``source`` (dataset or policy) in this process, one rank of however many;
    rank 0 prints the result as JSON. ``run_name``: an RL stage's MLflow run name."""
    from hipo.config import distributed_env

    if stage == "sft":
        from hipo.train.sft import train_sft

        result = train_sft(config, source, out, cache_dir=cache_dir)
    else:
        from hipo.train.rl import train_rl

        result = train_rl(config, source, out, run_name=run_name)
    if distributed_env().rank == 0:
        print(json.dumps(result, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hipo.launch.entry", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)
    for name, help_text in (("sft", "cold-start SFT"), ("rl", "RL from a policy"), ("eval", "evaluation")):
        p = stages.add_parser(name, help=help_text)
        p.add_argument("--config-uri", required=True, help="the run configuration (YAML), s3:// or a path")
        p.add_argument("--out-uri", required=True, help="where the result is left, s3:// or a path")
        if name == "sft":
            p.add_argument("--data", required=True, help="dataset directory or s3:// prefix")
            p.add_argument("--cache-dir", help="where converted / downloaded base models are kept")
        elif name == "rl":
            p.add_argument("--policy", required=True, help="policy: a directory, s3:// prefix or a name")
            p.add_argument("--run-name", default="", help="the MLflow run's name, e.g. 'rl (grpo from on)'")
        else:
            p.add_argument("--model", action="append", required=True)
            p.add_argument("--name", action="append", required=True)
            p.add_argument("--title", required=True)
            p.add_argument("--baseline", required=True)
            p.add_argument("--labels")
            p.add_argument("--reuse")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hipo import storage
    from hipo.config import distributed_env, load_config

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stage == "eval" and len(args.name) != len(args.model):
        parser.error(f"one --name per --model: models {args.model}, names {args.name}")
    work = Path(tempfile.mkdtemp(prefix=f"hipo-{args.stage}-"))
    remote_out = args.out_uri.startswith("s3://")
    try:
        config_path = work / "config.yaml"
        config_path.write_bytes(storage.read_bytes(args.config_uri))
        config = load_config(config_path)
        # RL writes to s3:// itself; SFT and eval write here first when their result goes to s3://
        out = work / "out" if remote_out and args.stage != "rl" else args.out_uri
        if args.stage == "eval":
            evaluate(args, config, work, out)
        else:
            source = args.data if args.stage == "sft" else args.policy
            train_stage(
                args.stage,
                config,
                source,
                out,
                getattr(args, "cache_dir", None),
                getattr(args, "run_name", ""),
            )
        if out != args.out_uri and distributed_env().rank == 0:
            storage.upload_dir(Path(out), args.out_uri)
    except training_errors() as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 2
    return 0


def _local(uri: str | None, dest: Path) -> str | None:
    """``uri`` as a local folder: an s3:// prefix is downloaded to ``dest`` first."""
    from hipo import storage

    if uri is None or not uri.startswith("s3://"):
        return uri
    storage.download_prefix(uri, dest)
    return str(dest)


def evaluate(args: argparse.Namespace, config: RunConfig, work: Path, out: str | Path) -> None:
    """The eval job: the models and inputs fetched to ``work``, the results written to ``out``."""
    from hipo.evaluate.compare import evaluate_models

    pairs = enumerate(zip(args.name, args.model, strict=True))
    models = {name: _local(model, work / f"model-{i}") or model for i, (name, model) in pairs}
    evaluate_models(
        config,
        models,
        out,
        labels=_local(args.labels, work / "labels"),
        title=args.title,
        baseline=args.baseline,
        earlier=_local(args.reuse, work / "reuse"),
    )


if __name__ == "__main__":
    sys.exit(main())
