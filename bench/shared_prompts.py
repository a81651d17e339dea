"""What running a group's prompt once buys, on the batches of bench/rl_step.py's smollm2 case.

For each step's rollouts (our trainer, the same prompts and settings as the benchmark) two pairs of
timings, alternating within the pair so both sides see the same load:

- prefill: the generation's first forward over the step's rows (every row its prompt) against the
  forward over its distinct prompts only, what hipo.engines.hf.sample now runs;
- update: the forward and backward of the update's rows (those with a non-zero advantage, one
  micro-batch) in the plain layout against the packed one (hipo.train.logprobs, ``share_prompts``;
  packed where its cost estimate says so, as in the update).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/shared_prompts.py [--steps 6] [--repeats 3]

Prints per-step seconds and the ratio plain / shared (min / median / max over steps x repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.profile_rl_step import smollm2_policy
from bench.rl_step import our_trainer, spread
from hipo.train.logprobs import response_logprobs, shares_prompts
from hipo.train.rollout import RolloutBatch, build_batch
from hipo.train.update import learning_rows

Pair = tuple[float, float]


def seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def prefill(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> None:
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, logits_to_keep=1)


def forward_backward(model: Any, batch: RolloutBatch, rows: torch.Tensor, share: bool) -> None:
    model.zero_grad(set_to_none=True)
    ids, mask = batch.input_ids[rows], batch.attention_mask[rows]
    logp, _ = response_logprobs(model, ids, mask, batch.prompt_width, True, shares_prompts(model) * share)
    (logp * batch.advantages[rows]).sum().backward()


def time_batch(model: Any, batch: RolloutBatch, repeats: int) -> tuple[list[Pair], list[Pair]]:
    """(prefill, forward-backward) pairs of seconds (plain, shared), ``repeats`` of each."""
    ids, mask, width_p = batch.input_ids, batch.attention_mask, batch.prompt_width
    prompts = torch.unique(torch.cat([ids[:, :width_p], mask[:, :width_p]], -1), dim=0)
    rows = learning_rows(batch, with_kl=False)
    first, update = [], []
    for _ in range(repeats):
        plain = seconds(lambda: prefill(model, ids[:, :width_p], mask[:, :width_p]))
        shared = seconds(lambda: prefill(model, prompts[:, :width_p], prompts[:, width_p:]))
        first.append((plain, shared))
        if len(rows) > 1:
            plain = seconds(lambda: forward_backward(model, batch, rows, False))
            update.append((plain, seconds(lambda: forward_backward(model, batch, rows, True))))
    fb = update[-1] if update else (0.0, 0.0)
    print(f"{len(ids)} rows, {len(prompts)} prompts, {len(rows)} update rows: prefill "
          f"{first[-1][0]:.3f} s vs {first[-1][1]:.3f} s, forward+backward {fb[0]:.3f} s vs {fb[1]:.3f} s",
          flush=True)  # fmt: skip
    return first, update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="steps whose batches are timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs per batch")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hipo-bench-cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = our_trainer("smollm2", smollm2_policy(args.cache), Path(tmp), args.steps)
    config, policy = trainer.config, trainer.policy
    prefills, updates = [], []
    for step in range(1, args.steps + 1):
        queries = trainer.cursor.take(config.rl.prompts_per_step)
        seed = (config.seed * 1_000_003 + step) * 1009
        prompts = [q.prompt for q in queries]
        completions = trainer.engine.generate(prompts, config.rl.group_size, config.rollout_sampling, seed)
        batch = build_batch(queries, completions, trainer.task, policy.tokenizer, policy.ids, config.rl)
        first, update = time_batch(policy.model, batch, args.repeats)
        prefills, updates = prefills + first, updates + update
    result = {
        name: {
            "plain_s_median": round(statistics.median(p for p, _ in pairs), 3),
            "shared_s_median": round(statistics.median(s for _, s in pairs), 3),
            "ratio": spread([p / s for p, s in pairs]),
        }
        for name, pairs in (("prefill", prefills), ("forward_backward", updates))
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
