"""What every training pod runs under torchrun: ``python -m hipo.launch.entry STAGE --config-uri URI
--out-uri URI -- [hipo train options]``.

It fetches the run configuration the launcher uploaded, runs ``hipo train STAGE`` and leaves the result
under ``--out-uri`` for the launcher to collect: RL writes there itself (and resumes from there when
the job is retried); SFT writes a local checkpoint that rank 0 then uploads. ``eval`` (after ``--``:
``--model URI --name NAME`` per model, ``--labels URI``, ``--reuse URI``, ``--title``, ``--baseline``)
downloads the models, evaluates them with the configured engine and uploads the results folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from hipo import storage
    from hipo.cli import main as hipo_main
    from hipo.config import distributed_env

    parser = argparse.ArgumentParser(prog="python -m hipo.launch.entry", description=__doc__)
    parser.add_argument("stage", choices=("sft", "rl", "eval"))
    parser.add_argument("--config-uri", required=True, help="the run configuration (YAML), s3:// or a path")
    parser.add_argument("--out-uri", required=True, help="where the final model is left, s3:// or a path")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, train_args = parser.parse_args(argv[:split]), argv[split + 1 :]  # after --: `hipo train` options
    work = Path(tempfile.mkdtemp(prefix=f"hipo-{args.stage}-"))
    config = work / "config.yaml"
    try:
        config.write_bytes(storage.read_bytes(args.config_uri))
        out = args.out_uri if args.stage == "rl" else str(work / "out")
        if args.stage == "eval":
            code = evaluate(train_args, config, work)
        else:
            code = hipo_main(["train", args.stage, "--config", str(config), *train_args, "--out", out])
        if code == 0 and args.stage != "rl" and distributed_env().rank == 0:
            storage.upload_dir(work / "out", args.out_uri)
    except storage.StorageError as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 2
    return code


def _local(uri: str | None, dest: Path) -> str | None:
    """``uri`` as a local folder: an s3:// prefix is downloaded to ``dest`` first."""
    from hipo import storage

    if uri is None or not uri.startswith("s3://"):
        return uri
    storage.download_prefix(uri, dest)
    return str(dest)


def evaluate(argv: Sequence[str], config_path: Path, work: Path) -> int:
    """The eval job: the models and inputs fetched to ``work``, the results written to ``work/out``."""
    from hipo.config import load_config
    from hipo.evaluate.compare import evaluate_models

    parser = argparse.ArgumentParser(prog="python -m hipo.launch.entry eval ... --")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--name", action="append", required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--labels")
    parser.add_argument("--reuse")
    args = parser.parse_args(argv)
    if len(args.name) != len(args.model):
        parser.error(f"one --name per --model: models {args.model}, names {args.name}")
    pairs = enumerate(zip(args.name, args.model, strict=True))
    models = {name: _local(model, work / f"model-{i}") or model for i, (name, model) in pairs}
    evaluate_models(
        load_config(config_path),
        models,
        work / "out",
        labels=_local(args.labels, work / "labels"),
        title=args.title,
        baseline=args.baseline,
        earlier=_local(args.reuse, work / "reuse"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
