"""Ablations of HiPO's switches (docs/algorithm.md §4–§5): each row the HiPO arm with one change.

Rows: the reference (defaults), GRPO from the same start, ``rl.bias=none``, ``rl.local_norm=false``,
``rl.global_mode_adv=false``, two values of γ, two of ω and the unfloored judge advantage
(``rl.judge_std_floor=0``). Every row starts from the same Cold-Start (mix) policy of the same seed and
is evaluated on the same held-out problems. The data and the SFT read no ``rl.*`` field, so they run
once per seed and are shared; each row then runs the pipeline's own RL and evaluation steps
(``hipo.pipeline.steps.hipo_rl`` / ``evaluate_models``, what the KFP components call), without the per-step
process start of kfp.local. Resumable: finished rows are kept (a ``--runs`` folder made with other
``--set`` or ``--reuse`` values is refused)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/ablations.py --seeds 0
    OMP_NUM_THREADS=1 .venv/bin/python bench/ablations.py --seeds 0 --set launch.procs_per_node=2 \\
        --set eval.max_problems=1000 --set eval.forced_mode_passes=false   # what bench/results holds
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.comparison import machine, seed_row, spread  # noqa: E402
from bench.figures import difficulty_figure  # noqa: E402
from hipo.pipeline import steps  # noqa: E402

START = "Cold-Start (mix)"
ROWS: dict[str, tuple[str, list[str]]] = {  # name: (rl.algorithm, overrides)
    "HiPO (reference)": ("hipo", []),
    "GRPO": ("grpo", []),
    "bias none": ("hipo", ["rl.bias=none"]),
    "local_norm off": ("hipo", ["rl.local_norm=false"]),
    "global_mode_adv off": ("hipo", ["rl.global_mode_adv=false"]),
    "gamma 0.5": ("hipo", ["rl.gamma=0.5"]),
    "gamma 2": ("hipo", ["rl.gamma=2.0"]),
    "omega 0": ("hipo", ["rl.omega=0.0"]),
    "omega 0.2": ("hipo", ["rl.omega=0.2"]),
    "judge_std_floor 0": ("hipo", ["rl.judge_std_floor=0.0"]),
}


SHARED = ("seed", "task", "data", "model", "sft")  # what the data and Cold-Start (mix) depend on


def reused(run: Path, base_dir: Path) -> tuple[Path, Path]:
    """(dataset, Cold-Start (mix) model) of a finished ``hipo run`` pipeline run (its artifacts folder),
    after checking that it was prepared with the same data and SFT settings as this seed."""
    theirs = steps.read_config(run / "prepare" / "config").to_dict()
    ours = steps.read_config(base_dir).to_dict()
    differ = [k for k in SHARED if theirs[k] != ours[k]]
    if differ:
        raise SystemExit(f"--reuse {run}: its {differ} settings differ from this seed's; run without --reuse")
    return run / "generate-hybrid-data" / "dataset", run / "sft" / "model"


def run_seed(
    seed: int, root: Path, sets: list[str], rows: list[str], reuse: Path | None = None
) -> tuple[dict[str, Any], float]:
    """Data and Cold-Start (mix) once (or those of ``reuse``, a finished pipeline run of this seed),
    then one RL run per ablation row; all evaluated together."""
    started = time.perf_counter()
    made_with = {"sets": sets, "reuse": str(reuse) if reuse else None}
    record = root / "made_with.json"
    earlier = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else made_with
    if earlier != made_with:
        raise SystemExit(
            f"{root} holds rows made with {earlier}, not {made_with}: "
            "its finished rows would be reused. Pass another --runs, or remove that folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(made_with), encoding="utf-8")
    base_dir, prompts, data = root / "config", root / "prompts", root / "data"
    steps.prepare({}, "", [f"seed={seed}", *sets], str(base_dir), str(prompts))
    sft_dir = root / "sft-mix"
    if reuse is not None:
        data, sft_dir = reused(reuse, base_dir)
    if not (data / "stats.json").is_file():
        steps.generate_hybrid_data(str(base_dir), str(prompts), str(data))
    if not (sft_dir / "config.json").is_file():
        steps.sft(str(base_dir), str(data), "mix", str(sft_dir), f"ablation-{seed}")
    models = {START: str(sft_dir)}
    for name in rows:
        row_dir = root / "rows" / name.replace(" ", "-").replace("(", "").replace(")", "")
        config_dir = row_dir / "config"
        algorithm, overrides = ROWS[name]
        steps.prepare({}, "", [f"seed={seed}", *sets, *overrides], str(config_dir), str(row_dir / "prompts"))
        if not (row_dir / "model" / "config.json").is_file():
            steps.hipo_rl(
                str(config_dir), str(sft_dir), algorithm, str(row_dir / "model"), f"ablation-{seed}"
            )
        models[name] = str(row_dir / "model")
    from hipo.evaluate.compare import evaluate_models

    results, _ = evaluate_models(
        steps.read_config(base_dir), models, root / "eval", labels=data / "mix", title="HiPO ablations",
        baseline=START, primary=START,
    )  # fmt: skip
    row = seed_row(results, START)
    return {"rows": row.pop("arms"), **row}, time.perf_counter() - started


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    first = per_seed[0]
    return {
        table: {
            name: {k: spread([s[table][name][k] for s in per_seed]) for k in first[table][name]}
            for name in first[table]
        }
        for table in ("rows", "think_rate_by_difficulty", "accuracy_by_difficulty")
        if table in first  # results files from before accuracy per difficulty was recorded lack it
    }


def _ms(s: dict[str, Any], fmt: str, scale: float = 1.0) -> str:
    if len(s["values"]) == 1:
        return f"{s['mean'] * scale:{fmt}}"
    return f"{s['mean'] * scale:{fmt}} [{s['min'] * scale:{fmt}}, {s['max'] * scale:{fmt}}]"


def markdown(report: dict[str, Any]) -> str:
    agg, meta = report["aggregate"], report["meta"]
    levels = list(next(iter(agg["think_rate_by_difficulty"].values())))
    lines = [
        "# HiPO ablations on the arithmetic benchmark",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; machine: {meta['machine']}; seeds: {meta['seeds']}",
        f"- wall time per seed (s): {', '.join(f'{w:.0f}' for w in meta['wall_s'])}",
        f"- overrides of every row: {meta['sets'] or 'none (defaults)'}",
        "",
        f"Every row is RL from the same {START} policy with one switch changed; Δ is relative to {START}."
        + (" Mean over seeds, [min, max] in brackets." if len(meta["seeds"]) > 1 else ""),
        "",
        "| row | change | accuracy | tokens | thinking rate | Δ tokens | Δ thinking rate | "
        + " | ".join(f"think {d}" for d in levels)
        + " |",
        "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(levels),
    ]
    for name, row in agg["rows"].items():
        algorithm, overrides = ROWS.get(name, ("", []))
        change = ", ".join(f"`{s}`" for s in overrides) or (
            f"`rl.algorithm={algorithm}`" if algorithm == "grpo" else "–"
        )
        cells = [_ms(row["accuracy"], ".3f"), _ms(row["tokens"], ".1f"), _ms(row["think_rate"], ".3f")]
        cells += [_ms(row[f"{k}_rel"], "+.1f", 100.0) + "%" for k in ("tokens", "think_rate")]
        cells += [_ms(agg["think_rate_by_difficulty"][name][d], ".2f") for d in levels]
        lines.append(f"| {name} | {change} | " + " | ".join(cells) + " |")
    if "accuracy_by_difficulty" in agg:
        lines += ["", "Accuracy per difficulty:", "", "| row | " + " | ".join(levels) + " |"]
        lines.append("|---|" + "---:|" * len(levels))
        for name, row in agg["accuracy_by_difficulty"].items():
            lines.append(f"| {name} | " + " | ".join(_ms(row[d], ".3f") for d in levels) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="section.field=value")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW")
    parser.add_argument("--runs", default="runs/bench/ablations", help="where the runs go (resumable)")
    parser.add_argument("--results", default="bench/results", help="where ablations.json/.md go")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="one seed only: take data and Cold-Start (mix) from this finished `hipo run` pipeline run "
        "(runs/.../artifacts/<pipeline run>), e.g. bench/comparison.py's run of the same seed",
    )
    args = parser.parse_args()
    if args.reuse and len(args.seeds) != 1:
        parser.error("--reuse belongs to one seed: pass exactly one --seeds value")

    started = datetime.now(UTC)
    per_seed, walls = [], []
    for seed in args.seeds:
        row, wall = run_seed(seed, ROOT / args.runs / f"seed-{seed}", args.sets, args.rows, args.reuse)
        per_seed.append(row)
        walls.append(wall)
    report = {
        "meta": {
            "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/ablations.py " + shlex.join(sys.argv[1:]),
            "date": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "seeds": args.seeds,
            "sets": args.sets,
            "wall_s": walls,
        },
        "per_seed": dict(zip(map(str, args.seeds), per_seed, strict=True)),
        "aggregate": aggregate(per_seed),
    }
    out = ROOT / args.results
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "ablations.md").write_text(markdown(report), encoding="utf-8")
    panels = {"thinking rate": "think_rate_by_difficulty", "accuracy": "accuracy_by_difficulty"}
    difficulty_figure({t: report["aggregate"][k] for t, k in panels.items()}, out / "ablations.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
