"""Does a `make demo` run (`hipo run --arms baseline`) show the HiPO claim? Reads the run's two
evaluation steps and checks the demo's targets.

    hipo run --preset demo --arms baseline --set seed=1 --out runs/demo-s1 > run.log 2>&1
    python bench/demo_targets.py runs/demo-s1 [--json targets.json]

Targets, against the run's Cold-Start (on): HiPO's accuracy at most 2 points below, its tokens at
most 0.75x and its thinking rate at most 0.60x; and HiPO at most 1 point below its own cold start.
The newest pipeline run under the folder is read. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hipo.evaluate.compare import slug
from hipo.evaluate.runner import load_result
from hipo.pipeline.steps import ARM_NAMES

ON, MIX, HIPO = ARM_NAMES[("on", "none")], ARM_NAMES[("mix", "none")], ARM_NAMES[("mix", "hipo")]
MAX_DROP_VS_ON, MAX_TOKENS, MAX_THINKING, MAX_DROP_VS_MIX = 0.02, 0.75, 0.60, 0.01


def arm(run_dir: Path, name: str) -> dict[str, float]:
    """Overall accuracy, tokens and thinking rate of one arm, from whichever evaluation scored it."""
    for step in ("evaluate-2", "evaluate"):
        folder = run_dir / step / "results" / "models" / slug(name)
        if (folder / "samples.jsonl").is_file():
            overall = load_result(folder, name).overall()
            return {key: float(overall[key]) for key in ("accuracy", "tokens", "think_rate")}
    raise FileNotFoundError(f"no evaluation of {name!r} under {run_dir}")


def targets(run_dir: Path) -> dict[str, float | bool]:
    on, mix, hipo = (arm(run_dir, name) for name in (ON, MIX, HIPO))
    row: dict[str, float | bool] = {
        "on_accuracy": on["accuracy"],
        "mix_accuracy": mix["accuracy"],
        "hipo_accuracy": hipo["accuracy"],
        "tokens_ratio": hipo["tokens"] / on["tokens"],
        "thinking_ratio": hipo["think_rate"] / on["think_rate"],
    }
    row["met"] = (
        hipo["accuracy"] >= on["accuracy"] - MAX_DROP_VS_ON - 1e-9
        and row["tokens_ratio"] <= MAX_TOKENS
        and row["thinking_ratio"] <= MAX_THINKING
        and hipo["accuracy"] >= mix["accuracy"] - MAX_DROP_VS_MIX - 1e-9
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="the --out folder of `hipo run`")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    runs = sorted((args.out / "artifacts").glob("*/evaluate"), key=lambda p: p.stat().st_mtime)
    if not runs:
        print(f"demo_targets: no evaluate step under {args.out}/artifacts", file=sys.stderr)
        return 2
    row = targets(runs[-1].parent)
    verdict = "met" if row["met"] else "MISSED"
    print(
        f"Cold-Start (on) {row['on_accuracy']:.3f} · Cold-Start (mix) {row['mix_accuracy']:.3f} · "
        f"HiPO {row['hipo_accuracy']:.3f}, tokens {row['tokens_ratio']:.3f}x, "
        f"thinking {row['thinking_ratio']:.3f}x of Cold-Start (on): targets {verdict}"
    )
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return 0 if row["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
