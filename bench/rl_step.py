"""This project's RL step and SFT step against TRL's, same policies and prompts, one run, CPU.

RL (per case): our trainer (hipo.train.rl.build_trainer, stepped by hand) and TRL's GRPOTrainer
(bench/trl_peers.py) on the same policy, the same prompts in the same order (P a step), G
completions each, the same max completion length, temperature 1, top_p 1, no KL, one PPO epoch and
the reward ACC + 0.2 * FORMAT, one generation batch each. TRL's update is one forward/backward over
the batch; ours runs its default micro-batches (rl.optim.micro_batch_size 32, rows sorted by
length, so less padding) with the same gradient (hipo.train.update). The two are
interleaved: after each TRL step (outside its timed span) one of ours runs, so every pair of steps
sees the same load of this shared machine. The first pair is warm-up; the ratio TRL s / our s of
each later pair gives min / median / max. Our step's split (generation, scoring, log-probs, update)
is reported beside it.

Cases: "tiny", the tiny Qwen3 warm-started on the format (bench/policies.py), 8 x 8 rollouts of 64
tokens; "smollm2", SmolLM2-135M-Instruct (``make smollm2``) after our SFT on scripted arithmetic
responses, 2 x 4 rollouts of 64 tokens (small: two shared cores). That
SFT is also the SFT comparison: ours (train_sft, length-sorted micro-batches of 4) against TRL's
SFTTrainer (the batch of 8 in one pass) from the same SmolLM2 on the same rows, batch, lr and max
length, in label tokens (tokens that carry loss) per second; the two take turns step by step (ours
in a worker thread) for TRL's steps, and the pairs after the first give the ratio.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/rl_step.py [--cases tiny smollm2] \\
        [--timed-steps 8] [--out bench/results/rl_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench import trl_peers  # noqa: E402
from bench.comparison import machine  # noqa: E402
from bench.policies import TINY, warm_start  # noqa: E402
from hipo.config import DistributedEnv, ModelConfig, RunConfig, build_config  # noqa: E402
from hipo.tasks.arithmetic import ArithmeticTask  # noqa: E402
from hipo.tasks.base import Problem  # noqa: E402
from hipo.train import distributed, preflight  # noqa: E402
from hipo.train.cursor import DataCursor  # noqa: E402
from hipo.train.rl import Trainer, build_trainer  # noqa: E402

FORMAT_WEIGHT = 0.2
SPLIT = ("time_generation", "time_scoring", "time_logprobs", "time_update", "time_sync")
CASES = {
    "tiny": {"prompts": 8, "group": 8, "max_new_tokens": 64, "levels": [1], "lr": 1e-5},
    "smollm2": {"prompts": 2, "group": 4, "max_new_tokens": 64, "levels": [1, 2], "lr": 1e-5},
}
# ours cuts each batch into length-sorted micro-batches of 4 (less padding), TRL runs it whole
SFT = {
    "batch_size": 8,
    "micro_batch_size": 4,
    "lr": 1e-3,
    "max_length": 384,
    "train_size": 256,
    "levels": [1, 2],
}


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


def our_trainer(
    case: str, policy_dir: Path, work: Path, steps: int, micro_batch_size: int | None = None
) -> tuple[Trainer, list[Problem]]:
    """Our RL trainer for ``case`` from ``policy_dir``, to step by hand, and its training problems."""
    c = CASES[case]
    micro = {"micro_batch_size": micro_batch_size} if micro_batch_size else {}
    rl = {
        "steps": steps,
        "prompts_per_step": c["prompts"],
        "group_size": c["group"],
        "format_weight": FORMAT_WEIGHT,
        "kl_beta": 0.0,
        "ppo_epochs": 1,
        "optim": {"lr": c["lr"], **micro},  # default micro-batches: length-sorted, so less padding
    }
    sampling = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": c["max_new_tokens"]}
    config = build_config(
        {
            "task": {"difficulties": c["levels"], "train_size": 256},
            "model": TINY if case == "tiny" else {},
            "rl": rl,
            "rollout_sampling": sampling,
        }
    )
    task = ArithmeticTask(c["levels"])
    problems = preflight.train_problems(task, config)
    distributed.seed_everything(config.seed)
    trainer, _ = build_trainer(config, DistributedEnv(), task, problems, str(policy_dir), work)
    return trainer, problems


def compare_rl(case: str, policy_dir: Path, work: Path, steps: int) -> dict[str, Any]:
    """``steps`` interleaved pairs of RL steps (ours, TRL's) from ``policy_dir``; the first is warm-up."""
    c = CASES[case]
    trainer, problems = our_trainer(case, policy_dir, work / "ours", steps)
    task, seed = trainer.task, trainer.config.seed
    cursor = DataCursor(problems, seed)  # the order our trainer draws its prompts in
    step_prompts = [cursor.take(c["prompts"]) for _ in range(steps)]
    ours: list[dict[str, Any]] = []

    def our_step(step: int) -> None:
        ours.append({**trainer.step(step), "load": load()})

    trl = trl_peers.grpo(
        policy_dir, work / "trl", task, step_prompts, c["group"], c["max_new_tokens"], FORMAT_WEIGHT,
        c["lr"], our_step,
    )  # fmt: skip
    pairs = list(zip(ours, trl, strict=True))[1:]
    return {
        "settings": {k: v for k, v in c.items()} | {"timed_steps": len(pairs), "warmup_steps": 1},
        "step_time_ratio": spread([t["step_s"] / o["time_step"] for o, t in pairs]),
        "tokens_per_s_ratio": spread(
            [(o["response_tokens"] / o["time_step"]) / (t["tokens"] / t["step_s"]) for o, t in pairs]
        ),
        "our_step_s": spread([o["time_step"] for o, _ in pairs]),
        "trl_step_s": spread([t["step_s"] for _, t in pairs]),
        "our_split_s_median": {k: round(statistics.median(o[k] for o, _ in pairs), 3) for k in SPLIT},
        "our_reward_mean": [round(o["reward_mean"], 3) for o in ours],
        "load_1min": spread([o["load"] for o in ours]),
        "steps": [
            {
                "ours_s": round(o["time_step"], 3),
                "ours_tokens": o["response_tokens"],
                "trl_s": round(t["step_s"], 3),
                "trl_tokens": round(t["tokens"]),
                **{k.removeprefix("time_"): round(o[k], 3) for k in SPLIT},
                "load_1min": o["load"],
            }
            for o, t in zip(ours, trl, strict=True)
        ],
    }


def sft_dataset(work: Path) -> Path:
    """A hybrid SFT set of arithmetic problems with the scripted teacher's responses (both modes)."""
    from hipo.data.pipeline import generate_dataset
    from hipo.engines.scripted import ScriptedEngine
    from hipo.tasks import get_task
    from hipo.tasks.rationale import TemplateRationaleWriter

    task = {"difficulties": SFT["levels"], "train_size": SFT["train_size"], "eval_size": 8}
    config = build_config({"task": task})
    generate_dataset(config, get_task("arithmetic"), ScriptedEngine(seed=0), TemplateRationaleWriter(), work)
    return work / "mix"


class TakeTurns:
    """TRL's loop (this thread) and ours (a worker thread) take turns, one step each, for the first
    ``steps`` steps of each: TRL 1, ours 1, TRL 2, ours 2, ...; then ours runs on alone."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.ours = threading.Semaphore(0)
        self.trl = threading.Semaphore(0)

    def before_our_step(self, step: int) -> None:
        if 1 < step <= self.steps + 1:
            self.trl.release()  # our previous step is done
        if step <= self.steps:
            self.ours.acquire()

    def after_trl_step(self, step: int) -> None:
        self.ours.release()
        self.trl.acquire()

    def release_all(self) -> None:
        """Our loop ended (or failed): TRL never waits for it again."""
        for _ in range(self.steps + 1):
            self.trl.release()


def sft_config(base_dir: Path, steps: int) -> RunConfig:
    """Our SFT of ``base_dir`` for ``steps`` steps, as the SFT comparison runs it."""
    sft = {
        "steps": steps,
        "batch_size": SFT["batch_size"],
        "max_length": SFT["max_length"],
        "eval_every": steps,
        "optim": {"lr": SFT["lr"], "micro_batch_size": SFT["micro_batch_size"]},
    }
    return build_config({"model": {"base": str(base_dir)}, "sft": sft})


def compare_sft(base_dir: Path, work: Path, steps: int, trl_steps: int) -> tuple[dict[str, Any], Path]:
    """Our SFT (``steps``; its result is the SmolLM2 RL policy) and TRL's (``trl_steps`` <= steps)
    from ``base_dir``, taking turns step by step; label tokens per second of each pair after the first."""
    from hipo.train.sft import train_sft
    from hipo.train.sft_data import read_sft_dataset

    data = sft_dataset(work / "data")
    config = sft_config(base_dir, steps)
    turns, failure = TakeTurns(trl_steps), []

    def ours() -> None:
        try:
            train_sft(
                config,
                data,
                work / "sft-ours",
                cache_dir=work / "cache",
                log_every=1,
                before_step=turns.before_our_step,
            )
        except BaseException as error:  # re-raised in the main thread
            failure.append(error)
        finally:
            turns.release_all()

    start_load = load()
    worker = threading.Thread(target=ours)
    worker.start()
    train = read_sft_dataset(data)["train"]
    trl_rows = trl_peers.sft(
        base_dir, work / "sft-trl", train, trl_steps, SFT["batch_size"], SFT["lr"], SFT["max_length"],
        turns.after_trl_step,
    )  # fmt: skip
    worker.join()
    if failure:
        raise failure[0]
    rows = [json.loads(x) for x in (work / "sft-ours" / "metrics.jsonl").read_text().splitlines()]
    ours_rate = [r["label_tokens_per_s"] for r in rows if "label_tokens_per_s" in r][1:trl_steps]
    theirs = [r["labels"] / r["step_s"] for r in trl_rows][1:]
    result = {
        "settings": SFT | {"our_steps": steps, "trl_steps": trl_steps, "warmup_steps": 1},
        "timed_pairs": len(theirs),
        "label_tokens_per_s_ratio": spread([o / t for o, t in zip(ours_rate, theirs, strict=True)]),
        "our_label_tokens_per_s": spread(ours_rate),
        "trl_label_tokens_per_s": spread(theirs),
        "trl_labels_per_step": [r["labels"] for r in trl_rows],
        "load_1min": {"start": start_load, "end": load()},
    }
    return result, work / "sft-ours"


def smollm2_base(cache: Path) -> Path:
    """SmolLM2-135M-Instruct with the HiPO tokens as a model folder (converted once into ``cache``)."""
    from hipo.models.policy import load_policy, save_policy

    folder = cache / "smollm2-hipo"
    if not (folder / "config.json").is_file():
        save_policy(load_policy("smollm2", ModelConfig(), cache), folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--timed-steps", type=int, default=8, help="RL step pairs timed after one warm-up")
    parser.add_argument("--smollm2-timed-steps", type=int, default=10)
    parser.add_argument("--sft-steps", type=int, default=20, help="our SFT steps (the SmolLM2 RL policy)")
    parser.add_argument("--trl-sft-steps", type=int, default=4, help="SFT step pairs (<= --sft-steps)")
    parser.add_argument("--warm-steps", type=int, default=300, help="format warm-start steps (tiny)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hipo-bench-cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rl_step.json")
    args = parser.parse_args()
    if not 2 <= args.trl_sft_steps <= args.sft_steps:
        parser.error("--trl-sft-steps must be at least 2 (one warm-up) and at most --sft-steps")
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "benchmark": "rl_step",
        "machine": machine() + f", torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "nice": os.nice(0),
        "command": "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/rl_step.py " + " ".join(sys.argv[1:]),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "tiny" in args.cases:
            policy = warm_start(work / "warm", steps=args.warm_steps, levels=tuple(CASES["tiny"]["levels"]))
            result["rl_tiny"] = compare_rl("tiny", policy, work / "rl-tiny", args.timed_steps + 1)
            _report(result, args.out)
        if "smollm2" in args.cases:
            base = smollm2_base(args.cache)
            result["sft_smollm2"], policy = compare_sft(
                base, work / "sft", args.sft_steps, args.trl_sft_steps
            )
            _report(result, args.out)
            steps = args.smollm2_timed_steps + 1
            result["rl_smollm2"] = compare_rl("smollm2", policy, work / "rl-smollm2", steps)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    _report(result, args.out)


def _report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result.items() if not isinstance(v, dict)}
    for name, part in result.items():
        if isinstance(part, dict):
            summary[name] = {k: v for k, v in part.items() if k != "steps"}
    print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
