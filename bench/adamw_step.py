"""One AdamW step over a model's weights: torch's default per-tensor loop against its fused kernel
(what the torch updater uses, hipo/train/optim.py), alternating, same gradients.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/adamw_step.py --model DIR [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a model folder")
    parser.add_argument("--steps", type=int, default=4, help="timed steps of each, after one warm-up")
    args = parser.parse_args()
    params = list(AutoModelForCausalLM.from_pretrained(args.model).parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimizers = {
        kind: torch.optim.AdamW(params, lr=1e-5, fused=kind == "fused") for kind in ("loop", "fused")
    }
    times: dict[str, list[float]] = {kind: [] for kind in optimizers}
    for step in range(args.steps + 1):
        for kind, optimizer in optimizers.items():
            started = time.perf_counter()
            optimizer.step()
            if step:
                times[kind].append(time.perf_counter() - started)
    result = {
        "benchmark": "adamw_step",
        "model": str(args.model),
        "weights": sum(p.numel() for p in params),
        "median_s": {kind: round(statistics.median(t), 3) for kind, t in times.items()},
        "loop_over_fused": round(statistics.median(times["loop"]) / statistics.median(times["fused"]), 2),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
