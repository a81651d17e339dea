"""What every training pod runs under torchrun: ``python -m hipo.launch.entry STAGE --config-uri URI
--out-uri URI -- [hipo train options]``.

It fetches the run configuration the launcher uploaded, runs ``hipo train STAGE`` and leaves the result
under ``--out-uri`` for the launcher to collect: RL writes there itself (and resumes from there when
the job is retried); SFT writes a local checkpoint that rank 0 then uploads.
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
    parser.add_argument("stage", choices=("sft", "rl"))
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
        code = hipo_main(["train", args.stage, "--config", str(config), *train_args, "--out", out])
        if code == 0 and args.stage == "sft" and distributed_env().rank == 0:
            storage.upload_dir(work / "out", args.out_uri)
    except storage.StorageError as error:
        print(f"hipo: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
