"""Which way HiPO's judge advantage pushes a level's mode choice, by direct accuracy and judge_std_floor.

For one level: Think-on always right, Think-off right with probability p_off. Groups of G rollouts
choose Think-on with probability q; rewards are ACC + 0.2 * FORMAT, then the §4 relative bias
(ω = 0.05) and the §5 judge advantage (hipo.train.algorithm, the trainer's own functions). The push is
the expected policy gradient on the logit of Think-on, E[Σ_i A_judge_i (1[on_i] − q)] / G: positive
moves the level toward Think-on, negative toward Think-off. The break-even p_off is where it changes
sign; the bias is meant to make Think-off win when it is within ω of Think-on (p_off ≳ 0.94 here)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/judge_floor.py [--groups 40000] [--q 0.2 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hipo.train import algorithm as alg  # noqa: E402

P_OFF = (0.8, 0.85, 0.9, 0.93, 0.95, 0.98, 1.0)
FLOORS = (0.0, 0.1, 0.2, 0.3)


def push(p_off: float, q: float, floor: float, groups: int, size: int, seed: int) -> float:
    """Expected gradient on the Think-on logit for one level (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    on = torch.rand(groups, size, generator=gen) < q
    modes = torch.where(on, alg.MODE_ON, alg.MODE_OFF)
    correct = on | (torch.rand(groups, size, generator=gen) < p_off)
    rewards = alg.bias_adjust(alg.rewards(correct, torch.ones(groups, size)), modes, "relative", 0.05)
    judge, _ = alg.hipo_advantages(rewards, modes, judge_std_floor=floor)
    return float((judge.double() * (on.double() - q)).sum(-1).mean()) / size


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=40000)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--q", type=float, nargs="+", default=[0.2, 0.5], help="Think-on shares to test")
    parser.add_argument("--results", default="bench/results", help="where judge_floor.json/.md go")
    args = parser.parse_args()
    table = {
        f"{floor:g}": {
            f"{q:g}": {f"{p:g}": push(p, q, floor, args.groups, args.group_size, seed=0) for p in P_OFF}
            for q in args.q
        }
        for floor in FLOORS
    }
    lines = [
        "# Judge-advantage push on the Think-on logit (+ toward Think-on, − toward Think-off)",
        "",
        "- command: `"
        + " ".join(["OMP_NUM_THREADS=1 .venv/bin/python bench/judge_floor.py", *sys.argv[1:]])
        + "`",
        f"- {args.groups} groups of {args.group_size}; Think-on always right; ω = 0.05, bias relative",
        "",
        "| judge_std_floor | Think-on share q | " + " | ".join(f"p_off {p:g}" for p in P_OFF) + " |",
        "|---|---|" + "---:|" * len(P_OFF),
    ]
    for floor, by_q in table.items():
        for q, row in by_q.items():
            lines.append(f"| {floor} | {q} | " + " | ".join(f"{v:+.3f}" for v in row.values()) + " |")
    out = ROOT / args.results
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge_floor.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    (out / "judge_floor.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
