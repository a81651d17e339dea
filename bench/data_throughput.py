"""Hybrid data pipeline throughput: teacher sampling + verification + incremental writes.

Measures `hipo.data.sampling.sample_queries` on the arithmetic task with the scripted teacher
(QUERIES queries x N samples per mode, one thread) against its peer in the same run: the bare
scripted engine producing the same samples with no verification and no I/O. The ratio says what
the pipeline's own work costs on top of generation.

    OMP_NUM_THREADS=1 .venv/bin/python bench/data_throughput.py [--queries 10000] [--n 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from hipo.config import SamplingConfig
from hipo.data.sampling import sample_queries
from hipo.engines.scripted import ScriptedEngine
from hipo.tasks.arithmetic import ArithmeticTask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=8, help="samples per mode (2n per query)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_throughput.json"))
    args = parser.parse_args()
    task = ArithmeticTask()
    problems = task.problems("train", args.queries, seed=0)
    sampling = SamplingConfig()
    samples = 2 * args.n * len(problems)

    engine = ScriptedEngine(seed=0)
    start = time.perf_counter()
    for i in range(0, len(problems), 256):
        prompts = [p.prompt for p in problems[i : i + 256]]
        for mode in ("on", "off"):
            engine.generate(prompts, args.n, sampling, forced_mode=mode)
    peer_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sample_queries(
            task, ScriptedEngine(seed=0), [("train", p) for p in problems], Path(tmp), args.n, sampling
        )
        pipeline_s = time.perf_counter() - start

    result = {
        "benchmark": "data_throughput",
        "queries": len(problems),
        "samples": samples,
        "pipeline_s": round(pipeline_s, 2),
        "pipeline_samples_per_s": round(samples / pipeline_s),
        "peer_bare_engine_s": round(peer_s, 2),
        "pipeline_over_peer_time": round(pipeline_s / peer_s, 2),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/data_throughput.py",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
