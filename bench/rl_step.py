"""One RL step: this project's trainer against TRL's GRPOTrainer, same tiny policy, same run, CPU.

Both train the same warm-started tiny Qwen3 (tests/rl_support.warm_start) on arithmetic prompts with
P prompts x G generations per step, group size G, the same max completion length, temperature 1.0,
no KL term and the reward ACC + 0.2 * FORMAT (hipo.template.parse + ArithmeticTask.verify). Each runs
``--steps`` optimizer steps; the first is warm-up and excluded, the rest are averaged. Ours: per-step
``time_step`` and ``response_tokens`` from ``train_rl``'s metrics.jsonl. TRL: wall time between
``on_step_begin`` and ``on_step_end`` and ``completions/mean_length`` x P x G from its logs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/rl_step.py [--prompts 8] [--group 8] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from hipo import template  # noqa: E402
from hipo.config import build_config  # noqa: E402
from hipo.tasks.arithmetic import ArithmeticTask  # noqa: E402
from hipo.train.rl import train_rl  # noqa: E402
from tests.rl_support import TINY, warm_start  # noqa: E402

FORMAT_WEIGHT = 0.2
LEVELS = (1,)


def run_ours(policy_dir: Path, out: Path, args: argparse.Namespace) -> list[dict]:
    config = build_config(
        {
            "task": {"difficulties": list(LEVELS), "train_size": 256},
            "model": TINY,
            "rl": {
                "algorithm": "hipo",
                "steps": args.steps,
                "prompts_per_step": args.prompts,
                "group_size": args.group,
                "format_weight": FORMAT_WEIGHT,
                "kl_beta": 0.0,
                "save_every": 10_000,
                "optim": {"lr": args.lr, "micro_batch_size": args.prompts * args.group},
            },
            "rollout_sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": args.max_new_tokens},
        }
    )
    train_rl(config, str(policy_dir), out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{"step_s": r["time_step"], "tokens": r["response_tokens"]} for r in rows]


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.start = 0.0
        self.steps: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self.start)


def run_trl(policy_dir: Path, out: Path, args: argparse.Namespace) -> list[dict]:
    task = ArithmeticTask(LEVELS)
    problems = task.problems("train", 256, seed=0)
    by_id = {p.id: p for p in problems}
    rows = [{"prompt": [{"role": "user", "content": p.prompt}], "problem_id": p.id} for p in problems]

    def reward(completions, problem_id, **kwargs):
        scores = []
        for completion, pid in zip(completions, problem_id, strict=True):
            text = completion[0]["content"] if isinstance(completion, list) else completion
            parsed = template.parse(text)
            acc = float(task.verify(by_id[pid], parsed.answer))
            scores.append(acc + FORMAT_WEIGHT * float(parsed.format_ok))
        return scores

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    batch = args.prompts * args.group
    cfg = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        num_generations=args.group,
        max_completion_length=args.max_new_tokens,
        max_steps=args.steps,
        learning_rate=args.lr,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        bf16=False,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
        seed=0,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=str(policy_dir),
        reward_funcs=[reward],
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    lengths = [
        h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
    ]
    return [{"step_s": s, "tokens": n * batch} for s, n in zip(timer.steps, lengths, strict=True)]


def summary(steps: list[dict]) -> tuple[float, float]:
    timed = steps[1:]  # first step is warm-up
    step_s = statistics.mean(s["step_s"] for s in timed)
    tokens = statistics.mean(s["tokens"] for s in timed)
    return step_s, tokens / step_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8, help="P: prompts per step")
    parser.add_argument("--group", type=int, default=8, help="G: generations per prompt (group size)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="max completion length")
    parser.add_argument("--steps", type=int, default=4, help="steps per trainer; the first is warm-up")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--warm-steps", type=int, default=300, help="format warm-start steps of the policy")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "rl_step.json"))
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is warm-up)")
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        policy_dir = warm_start(tmp_path / "warm", steps=args.warm_steps, levels=LEVELS)
        ours = run_ours(policy_dir, tmp_path / "ours", args)
        trl = run_trl(policy_dir, tmp_path / "trl", args)

    our_step_s, our_tps = summary(ours)
    trl_step_s, trl_tps = summary(trl)
    command = "OMP_NUM_THREADS=1 .venv/bin/python bench/rl_step.py " + " ".join(sys.argv[1:])
    result = {
        "benchmark": "rl_step",
        "our_step_s": round(our_step_s, 3),
        "trl_step_s": round(trl_step_s, 3),
        "step_time_ratio": round(trl_step_s / our_step_s, 3),
        "our_tokens_per_s": round(our_tps, 1),
        "trl_tokens_per_s": round(trl_tps, 1),
        "tokens_per_s_ratio": round(our_tps / trl_tps, 3),
        "settings": {
            "prompts_per_step": args.prompts,
            "group_size": args.group,
            "max_new_tokens": args.max_new_tokens,
            "steps": args.steps,
            "warmup_steps_excluded": 1,
            "lr": args.lr,
            "temperature": 1.0,
            "kl_beta": 0.0,
            "reward": f"ACC + {FORMAT_WEIGHT} * FORMAT",
            "policy": f"tiny Qwen3 {TINY}, warm_start(steps={args.warm_steps}, levels={LEVELS})",
            "ours": "hipo.train.rl.train_rl, algorithm=hipo, micro_batch_size=P*G",
            "trl": "trl.GRPOTrainer, per_device_train_batch_size=P*G, num_generations=G, use_cpu",
            "our_steps": [{k: round(v, 3) for k, v in s.items()} for s in ours],
            "trl_steps": [{k: round(v, 3) for k, v in s.items()} for s in trl],
        },
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "command": command.strip(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
