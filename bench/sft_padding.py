"""How many tokens an SFT step computes per token of the rows it holds, under data parallelism.

A step's global batch is sharded across ranks (every world_size-th row), each rank sorts its share
by length and cuts it into micro-batches, and each micro-batch is padded to its longest row. The
step lasts as long as its slowest rank, so its cost is ``world_size * max over ranks of padded
tokens``. This script counts that cost, over the same shuffled batches the trainer draws, for the
trainer's layout and for its peer in the same run: the whole batch sorted by length, cut into
micro-batches and dealt to the ranks in snake order (0, 1, 1, 0, ...). No training, no timing::

    .venv/bin/python bench/sft_padding.py --data runs/demo/artifacts/<run>/generate-hybrid-data/dataset/mix \\
        --model runs/demo/artifacts/<run>/sft/model --batch-sizes 64 32 --out bench/results/sft_padding.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from hipo.config import DistributedEnv
from hipo.train import distributed
from hipo.train.sft_data import encode, micro_batches, read_sft_dataset, shuffled_batches

Layout = Callable[[list[int], Sequence[int], int, int], list[list[list[int]]]]


def sharded_then_sorted(
    rows: list[int], lengths: Sequence[int], world: int, micro: int
) -> list[list[list[int]]]:
    """The trainer's layout: ``distributed.shard`` (every world-th row), then ``micro_batches``."""
    envs = [DistributedEnv(rank=rank, world_size=world) for rank in range(world)]
    return [micro_batches(distributed.shard(rows, env), lengths, micro) for env in envs]


def sorted_then_dealt(
    rows: list[int], lengths: Sequence[int], world: int, micro: int
) -> list[list[list[int]]]:
    """The peer: global length sort, micro-batches, dealt in snake order so no rank takes every longest."""
    ranks: list[list[list[int]]] = [[] for _ in range(world)]
    for k, part in enumerate(micro_batches(rows, lengths, micro)):
        turn, pos = divmod(k, world)
        ranks[pos if turn % 2 == 0 else world - 1 - pos].append(part)
    return ranks


def step_cost(layout: list[list[list[int]]], lengths: Sequence[int]) -> int:
    """Padded tokens of the slowest rank, times the number of ranks."""
    padded = [sum(len(part) * max(lengths[i] for i in part) for part in rank) for rank in layout]
    return max(padded) * len(layout)


def measure(
    lengths: Sequence[int], levels: Sequence[int], batch: int, world: int, micro: int, steps: int
) -> dict:
    layouts: dict[str, Layout] = {"trainer": sharded_then_sorted, "sorted_then_dealt": sorted_then_dealt}
    batches = shuffled_batches(levels, batch, seed=0)
    real, cost = 0, dict.fromkeys(layouts, 0)
    for _ in range(steps):
        rows = next(batches)
        real += sum(lengths[i] for i in rows)
        for name, layout in layouts.items():
            cost[name] += step_cost(layout(rows, lengths, world, micro), lengths)
    return {
        "batch_size": batch,
        "world_size": world,
        "micro_batch_size": micro,
        "steps": steps,
        "tokens": real,
        **{f"{name}_cost_per_token": round(cost[name] / real, 4) for name in layouts},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="an SFT dataset folder (train/eval parquet)")
    parser.add_argument("--model", required=True, help="a model folder whose tokenizer encodes the rows")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--micro", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from transformers import AutoTokenizer  # here: the layouts above import without it

    train = read_sft_dataset(args.data)["train"]
    lengths = [len(e.ids) for e in encode(AutoTokenizer.from_pretrained(args.model), train)]
    rows = [
        measure(lengths, list(train["level"]), batch, world, args.micro, args.steps)
        for batch in args.batch_sizes
        for world in args.world_sizes
    ]
    result = {"data": str(args.data), "mean_length": round(sum(lengths) / len(lengths), 1), "rows": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
