"""The paper's five-arm comparison (docs/algorithm.md) over seeds, through the real pipeline.

For each seed it runs ``hipo run --arms all`` (the whole KFP DAG through kfp.local: data, both cold
starts, GRPO from each, HiPO, evaluation), reads the compare-arms step's scored samples back, and
writes per-arm mean and spread (min–max over seeds) of accuracy, tokens and thinking rate, their
changes relative to Cold-Start (on), thinking rate per difficulty, and HiPO against the paper's claim::

    OMP_NUM_THREADS=1 .venv/bin/python bench/comparison.py --seeds 0 1 2 \\
        --set launch.procs_per_node=2 --set eval.max_problems=1000
    OMP_NUM_THREADS=1 .venv/bin/python bench/comparison.py --seeds 0 1 2 \\
        --set launch.procs_per_node=2 --set eval.max_problems=1000 --check bench/results/comparison.json

``launch.procs_per_node=2`` trains data-parallel over both cores (torchrun), which keeps a 2-core
machine busy; ``--jobs 2`` instead runs two seeds at once, for single-process training. Each seed has
its own registry (``<runs>/seed-N/mlflow.db``), so parallel runs never share a SQLite file.

``--check`` compares the new run with an earlier results file instead of overwriting it: every
per-arm mean must lie within the earlier min–max spread (widened by ``--tolerance``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import difficulty_figure  # noqa: E402
from hipo.evaluate.metrics import EvalResult  # noqa: E402
from hipo.evaluate.table import comparison_table, difficulty_table  # noqa: E402
from hipo.pipeline import steps  # noqa: E402

BASELINE, HIPO = "Cold-Start (on)", "Cold-Start (mix)+HiPO"
GRPO_ON, GRPO_MIX = "Cold-Start (on)+GRPO", "Cold-Start (mix)+GRPO"
VALUES = ("accuracy", "tokens", "think_rate")
# The paper's reported effect of HiPO against Cold-Start (on): -30% tokens, -39% thinking rate (at most)
TARGETS = {"tokens_ratio": 0.70, "think_rate_ratio": 0.61}


def machine() -> str:
    """CPU model, cores this process may use, and the load when the run started (the cores are shared)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()} {model or platform.processor()}, {len(os.sched_getaffinity(0))} cores, "
        f"load {load:.1f} at start, python {platform.python_version()}"
    )


def run_seed(seed: int, out: Path, sets: list[str]) -> tuple[Path, float]:
    """``hipo run --arms all`` for one seed; returns the compare-arms results folder and the wall time.

    The run goes to ``out/pipeline``: its local registry is ``out/mlflow.db``, the seed's own."""
    out = out / "pipeline"
    command = [sys.executable, "-m", "hipo.cli", "run", "--arms", "all", "--out", str(out)]
    command += [a for s in [f"seed={seed}", *sets] for a in ("--set", s)]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT).returncode
    wall = time.perf_counter() - started
    found = sorted((out / "artifacts").glob("*/compare-arms/results"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(
            f"seed {seed}: `hipo run` exited {code} and left no compare-arms results under {out}"
        )
    if code != 0:  # a later step (register, promote) failed: the comparison itself is complete
        print(
            f"seed {seed}: `hipo run` exited {code} after the comparison; using its results", file=sys.stderr
        )
    return found[-1], wall


def _frame(frame: Any) -> dict[str, dict[str, float | None]]:
    """A table as {row: {column: value}}, NaN as None (valid JSON)."""
    return {
        name: {k: None if math.isnan(v) else float(v) for k, v in frame.loc[name].items()}
        for name in frame.index
    }


def seed_row(results: dict[str, EvalResult], baseline: str = BASELINE) -> dict[str, Any]:
    """One seed: per arm the values and changes relative to ``baseline``, and thinking rate / accuracy
    per difficulty."""
    return {
        "arms": _frame(comparison_table(results, baseline)),
        "think_rate_by_difficulty": _frame(difficulty_table(results, "arithmetic", "think_rate")),
        "accuracy_by_difficulty": _frame(difficulty_table(results, "arithmetic", "accuracy")),
    }


def spread(values: list[float | None]) -> dict[str, Any]:
    """Mean, min, max and population std over seeds; undefined values (NaN, None) are left out."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return {"mean": None, "min": None, "max": None, "std": None, "values": [None] * len(values)}
    lo, hi = min(known), max(known)
    return {  # fmean([0.99] * 3) is 0.98999…: clamped, so plots never get a negative error bar
        "mean": min(max(statistics.fmean(known), lo), hi),
        "min": lo,
        "max": hi,
        "std": statistics.pstdev(known),
        "values": [v if v in known else None for v in values],
    }


def aggregate(seeds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    rows = list(seeds.values())
    arms = {
        name: {k: spread([r["arms"][name][k] for r in rows]) for k in rows[0]["arms"][name]}
        for name in rows[0]["arms"]
    }
    by_difficulty = {
        table: {
            name: {d: spread([r[table][name][d] for r in rows]) for d in rows[0][table][name]}
            for name in rows[0][table]
        }
        for table in ("think_rate_by_difficulty", "accuracy_by_difficulty")
    }
    per_seed_targets = [targets(r["arms"]) for r in rows]
    return {
        "arms": arms,
        **by_difficulty,
        "targets": {
            "per_seed": per_seed_targets,
            "mean": targets({n: {k: v["mean"] for k, v in a.items()} for n, a in arms.items()}),
        },
    }


def targets(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """HiPO against the paper's claim: tokens and thinking rate as ratios of Cold-Start (on) (the
    paper: 0.70 and 0.61), accuracy against Cold-Start (on)+GRPO (the paper: HiPO above GRPO); None
    where a value is undefined."""
    hipo, base, grpo = arms[HIPO], arms[BASELINE], arms[GRPO_ON]

    def ratio(k: str) -> float | None:
        return hipo[k] / base[k] if hipo[k] is not None and base[k] else None

    tokens, think = ratio("tokens"), ratio("think_rate")
    gap = hipo["accuracy"] - grpo["accuracy"] if None not in (hipo["accuracy"], grpo["accuracy"]) else None
    return {
        "tokens_ratio": tokens,
        "think_rate_ratio": think,
        "accuracy_minus_on_grpo": gap,
        "tokens_met": tokens is not None and tokens <= TARGETS["tokens_ratio"],
        "think_rate_met": think is not None and think <= TARGETS["think_rate_ratio"],
        "accuracy_met": gap is not None and gap >= 0,
    }


def _fmt(value: float | None, fmt: str) -> str:
    return "–" if value is None else f"{value:{fmt}}"


def _ms(s: dict[str, Any], fmt: str, scale: float = 1.0, unit: str = "") -> str:
    if s["mean"] is None:
        return "–"
    lo, hi = s["min"] * scale, s["max"] * scale
    return f"{s['mean'] * scale:{fmt}}{unit} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown(report: dict[str, Any]) -> str:
    agg, meta = report["aggregate"], report["meta"]
    lines = [
        "# Five-arm comparison (docs/algorithm.md) on the arithmetic benchmark",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; machine: {meta['machine']}; seeds: {meta['seeds']}",
        f"- wall time per seed (s): {', '.join(f'{w:.0f}' for w in meta['wall_s'])}",
        f"- overrides: {meta['sets'] or 'none (defaults)'}",
        "",
        "Mean over seeds, [min, max] in brackets; changes relative to Cold-Start (on) of the same seed.",
        "",
        "| arm | accuracy | tokens | thinking rate | Δ accuracy | Δ tokens | Δ thinking rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, a in agg["arms"].items():
        cells = [_ms(a["accuracy"], ".3f"), _ms(a["tokens"], ".1f"), _ms(a["think_rate"], ".3f")]
        cells += [_ms(a[f"{k}_rel"], "+.1f", 100.0, "%") for k in VALUES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for table, title in (
        ("think_rate_by_difficulty", "Thinking rate"),
        ("accuracy_by_difficulty", "Accuracy"),
    ):
        levels = list(next(iter(agg[table].values())))
        lines += ["", f"{title} per difficulty (mean [min, max]):", ""]
        lines += ["| arm | " + " | ".join(levels) + " |", "|---|" + "---:|" * len(levels)]
        for name, row in agg[table].items():
            lines.append(f"| {name} | " + " | ".join(_ms(row[d], ".2f") for d in levels) + " |")
    t = agg["targets"]
    lines += [
        "",
        "Cold-Start (mix)+HiPO against the paper's claim (tokens −30% and thinking rate −39% of "
        "Cold-Start (on), accuracy at least GRPO's):",
        "",
        "| seed | tokens / Cold-Start (on) (≤ 0.70) | thinking rate / Cold-Start (on) (≤ 0.61) "
        "| accuracy − Cold-Start (on)+GRPO (≥ 0) |",
        "|---|---:|---:|---:|",
    ]
    for seed, row in [*zip(meta["seeds"], t["per_seed"], strict=True), ("mean", t["mean"])]:
        marks = ["met" if row[k] else "missed" for k in ("tokens_met", "think_rate_met", "accuracy_met")]
        values = [_fmt(row[k], f) for k, f in (("tokens_ratio", ".3f"), ("think_rate_ratio", ".3f"))]
        values.append(_fmt(row["accuracy_minus_on_grpo"], "+.3f"))
        lines.append(
            "| " + " | ".join([str(seed)] + [f"{v} ({m})" for v, m in zip(values, marks, strict=True)]) + " |"
        )
    return "\n".join(lines) + "\n"


def check(new: dict[str, Any], old: dict[str, Any], tolerance: float) -> list[str]:
    """Where a per-arm mean of ``new`` falls outside ``old``'s min–max (± tolerance): the misses."""
    misses = []
    for name, arm in new["aggregate"]["arms"].items():
        for k in VALUES:
            ref, mean = old["aggregate"]["arms"][name][k], arm[k]["mean"]
            if ref["mean"] is None or mean is None:
                if (ref["mean"] is None) != (mean is None):
                    misses.append(f"{name} {k}: defined in one run only")
                continue
            slack = tolerance * (abs(ref["mean"]) if k == "tokens" else 1.0)
            if not ref["min"] - slack <= mean <= ref["max"] + slack:
                misses.append(f"{name} {k}: {mean:.4f} outside [{ref['min']:.4f}, {ref['max']:.4f}]")
    return misses


def unchanged_per_seed(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """For each seed in both runs, how many of its reported values are identical (all, when the
    pipeline is deterministic on this machine), naming the arms that differ."""
    lines = []
    for seed in sorted(new["per_seed"].keys() & old["per_seed"].keys(), key=int):
        a, b = new["per_seed"][seed], old["per_seed"][seed]
        keys = [(t, arm, k) for t in a for arm in a[t] for k in a[t][arm]]
        changed = [key for key in keys if a[key[0]][key[1]][key[2]] != b[key[0]][key[1]].get(key[2])]
        arms = sorted({arm for _, arm, _ in changed})
        lines.append(
            f"seed {seed}: {len(keys) - len(changed)} of {len(keys)} values identical"
            + (f"; differ: {', '.join(arms)}" if arms else "")
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="section.field=value")
    parser.add_argument(
        "--runs",
        help="where the pipeline runs go (default runs/bench/comparison, with --check "
        "runs/bench/comparison-check: a finished seed there is reused, so a check needs its own)",
    )
    parser.add_argument("--results", default="bench/results", help="where comparison.json/.md go")
    parser.add_argument("--check", help="an earlier comparison.json the new run must reproduce")
    parser.add_argument("--tolerance", type=float, default=0.0, help="slack on --check (tokens: relative)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (one core each)")
    args = parser.parse_args()
    args.runs = args.runs or ("runs/bench/comparison-check" if args.check else "runs/bench/comparison")

    started = datetime.now(UTC)
    done: dict[int, tuple[dict[str, Any], float]] = {}
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {
            pool.submit(measure_seed, seed, ROOT / args.runs / f"seed-{seed}", args.sets): seed
            for seed in args.seeds
        }
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            ordered = [s for s in args.seeds if s in done]  # the results files list seeds in order
            write(args, started, {s: done[s][0] for s in ordered}, [done[s][1] for s in ordered])
    if args.check:
        report = json.loads((ROOT / args.results / "comparison-check.json").read_text(encoding="utf-8"))
        earlier = json.loads(Path(args.check).read_text(encoding="utf-8"))
        misses = check(report, earlier, args.tolerance)
        print("\n".join(unchanged_per_seed(report, earlier)))
        print(
            "reproduced within the reported spread"
            if not misses
            else "NOT reproduced:\n  " + "\n  ".join(misses)
        )
        return 1 if misses else 0
    return 0


def measure_seed(seed: int, out: Path, sets: list[str]) -> tuple[dict[str, Any], float]:
    """One seed's table, from its finished run when ``out`` holds one with the same overrides."""
    done = out / "bench_seed.json"
    if done.is_file():
        saved = json.loads(done.read_text(encoding="utf-8"))
        if saved["sets"] == sets:
            print(f"seed {seed}: reusing the finished run in {out}", file=sys.stderr)
            return saved["row"], saved["wall_s"]
    results_dir, wall = run_seed(seed, out, sets)
    row = seed_row(steps.arm_results(results_dir))
    done.write_text(json.dumps({"sets": sets, "wall_s": wall, "row": row}), encoding="utf-8")
    return row, wall


def write(
    args: argparse.Namespace, started: datetime, seeds: dict[int, dict[str, Any]], walls: list[float]
) -> None:
    """The results files for the seeds done so far (rewritten after every seed)."""
    report = {
        "meta": {
            "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/comparison.py " + shlex.join(sys.argv[1:]),
            "date": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "seeds": list(seeds),
            "sets": args.sets,
            "wall_s": walls,
        },
        "per_seed": {str(s): row for s, row in seeds.items()},
        "aggregate": aggregate(seeds),
    }
    name = "comparison-check" if args.check else "comparison"
    out = ROOT / args.results
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown(report), encoding="utf-8")
    agg = report["aggregate"]
    panels = {"thinking rate": agg["think_rate_by_difficulty"], "accuracy": agg["accuracy_by_difficulty"]}
    difficulty_figure(panels, out / f"{name}.png")
    print(markdown(report))


if __name__ == "__main__":
    raise SystemExit(main())
