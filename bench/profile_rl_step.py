"""Where our RL step's time goes: cProfile over a few steps of a case of bench/rl_step.py (the same
policy, prompts and settings), the functions with the most time of their own first.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/profile_rl_step.py [--case smollm2] \\
        [--steps 4] [--top 30] [--micro-batch-size 64] [--full-update]

The first step is run before profiling (warm-up). The smollm2 case's policy is our SFT of
SmolLM2-135M-Instruct as bench/rl_step.py runs it (20 steps), trained once into ``--cache``.
docs/speed.md keeps what this showed.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.policies import warm_start
from bench.rl_step import CASES, our_trainer, sft_config, sft_dataset, smollm2_base


def smollm2_policy(cache: Path, steps: int = 20) -> Path:
    """Our SFT of SmolLM2-135M-Instruct (bench/rl_step.py's) for ``steps`` steps, trained once into
    ``cache``."""
    from hipo.train.sft import train_sft

    folder = cache / f"smollm2-sft-{steps}"
    if not (folder / "config.json").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            data = sft_dataset(Path(tmp) / "data")
            train_sft(sft_config(smollm2_base(cache), steps), data, folder, cache_dir=Path(tmp) / "cache")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=list(CASES), default="tiny")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hipo-bench-cache")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps after one warm-up step")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key: tottime, cumulative, ...")
    parser.add_argument("--micro-batch-size", type=int, help="rl.optim.micro_batch_size (default: 32)")
    parser.add_argument(
        "--full-update",
        action="store_true",
        help="a frozen copy of the policy as KL reference at kl_beta 0: the update then recomputes "
        "pi_old in its own pass and forwards every row, as before those were skipped",
    )
    parser.add_argument("--no-profile", action="store_true", help="only the step timings (no cProfile)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.case == "tiny":
            policy = warm_start(work / "warm", steps=300, levels=tuple(CASES["tiny"]["levels"]))
        else:
            policy = smollm2_policy(args.cache)
        trainer, _ = our_trainer(args.case, policy, work / "ours", args.steps + 1, args.micro_batch_size)
        if args.full_update:
            trainer.ref_model = trainer.updater.frozen(copy.deepcopy(trainer.policy.model))
        trainer.step(1)
        profile = cProfile.Profile()
        if not args.no_profile:
            profile.enable()
        rows = [trainer.step(step) for step in range(2, args.steps + 2)]
        profile.disable()
    if not args.no_profile:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    for row in rows:
        print({k: round(v, 3) for k, v in row.items() if k.startswith("time_") or k == "response_tokens"})


if __name__ == "__main__":
    main()
