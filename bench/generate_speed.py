"""Rollout generation: the hf engine's decoding loop (hipo.engines.hf.sample) against transformers'
``generate`` on the same policy, the same left-padded rows and the same sampling, in one run.

Both decode with a KV cache; ``generate`` keeps finished rows in the batch and runs its logits
processors and stopping criteria every token, ours drops finished rows and samples with a few tensor
ops. Calls alternate (ours, generate, ours, ...) so both see the same load; the first pair is
warm-up. Reports seconds per call and generated tokens per second (min / median / max of the ratio).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/generate_speed.py --model DIR \\
        [--prompts 8] [--group 8] [--max-new-tokens 64] [--calls 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from hipo.config import SamplingConfig
from hipo.engines.hf import sample
from hipo.engines.prompting import chat_prompt, stop_token_ids
from hipo.tasks.arithmetic import ArithmeticTask


def rows(tokenizer: object, prompts: list[str], group: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [
        tokenizer.encode(chat_prompt(tokenizer, p, "auto")[0], add_special_tokens=False) for p in prompts
    ]
    encoded = [ids for ids in encoded for _ in range(group)]
    width = max(map(len, encoded))
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :], attention[row, width - len(ids) :] = torch.tensor(ids), 1
    return input_ids, attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a model folder with the HiPO tokens")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--calls", type=int, default=6, help="pairs of calls; the first is warm-up")
    args = parser.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    prompts = [p.prompt for p in ArithmeticTask([1]).problems("train", args.prompts, seed=0)]
    input_ids, attention = rows(tokenizer, prompts, args.group, pad_id)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    config = GenerationConfig(
        do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens,
        eos_token_id=stops, pad_token_id=pad_id, use_cache=True,
    )  # fmt: skip
    width, stop_set = input_ids.shape[1], set(stops)
    pairs = []
    for call in range(args.calls):
        started = time.perf_counter()
        out = sample(
            model, input_ids, attention, sampling, stops, pad_id, torch.Generator().manual_seed(call), False
        )
        ours = (time.perf_counter() - started, sum(out.lengths))
        torch.manual_seed(call)
        started = time.perf_counter()
        with torch.inference_mode():
            sequences = model.generate(
                input_ids=input_ids, attention_mask=attention, generation_config=config
            )
        elapsed = time.perf_counter() - started
        lengths = [
            next((i + 1 for i, t in enumerate(r) if t in stop_set), len(r))
            for r in sequences[:, width:].tolist()
        ]
        pairs.append(
            {
                "ours_s": ours[0],
                "ours_tokens": ours[1],
                "hf_s": elapsed,
                "hf_tokens": sum(lengths),
                "load": os.getloadavg()[0],
            }
        )
    timed = pairs[1:]
    ratio = [(p["ours_tokens"] / p["ours_s"]) / (p["hf_tokens"] / p["hf_s"]) for p in timed]
    result = {
        "benchmark": "generate_speed",
        "model": str(args.model),
        "rows": input_ids.shape[0],
        "max_new_tokens": args.max_new_tokens,
        "tokens_per_s_ratio": {"min": min(ratio), "median": statistics.median(ratio), "max": max(ratio)},
        "calls": [{k: round(v, 3) for k, v in p.items()} for p in pairs],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
