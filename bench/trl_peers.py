"""TRL's trainers as the peers of bench/rl_step.py: GRPOTrainer for the RL step, SFTTrainer for SFT.

Each is set up to do the same work as ours (see bench/rl_step.py) and reports per-step wall times
measured by a callback between ``on_step_begin`` and ``on_step_end``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback

from hipo import template
from hipo.tasks.base import Problem, Task


class StepTimer(TrainerCallback):
    """Wall time of every optimiser step; ``after_step(i)`` runs outside the timed span (the benchmark
    interleaves one step of ours there, so both see the same machine load)."""

    def __init__(self, after_step: Callable[[int], None] | None = None) -> None:
        self.start = 0.0
        self.steps: list[float] = []
        self.after_step = after_step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps.append(time.perf_counter() - self.start)
        if self.after_step is not None:
            self.after_step(len(self.steps))


def grpo(
    policy_dir: Path,
    out: Path,
    task: Task,
    step_prompts: Sequence[Sequence[Problem]],
    group: int,
    max_new_tokens: int,
    format_weight: float,
    lr: float,
    after_step: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """GRPOTrainer, one step per entry of ``step_prompts`` with exactly those prompts (no shuffling),
    ``group`` completions each, all in one generation batch and one forward/backward: one PPO epoch
    (num_iterations 1), no KL (beta 0), temperature 1, top_p 1, reward ACC + w * FORMAT. Returns per
    step its seconds and completion tokens."""
    from trl import GRPOConfig, GRPOTrainer

    problems = [p for prompts in step_prompts for p in prompts]
    by_id = {p.id: p for p in problems}
    rows = [{"prompt": [{"role": "user", "content": p.prompt}], "problem_id": p.id} for p in problems]

    def reward(completions: list[Any], problem_id: list[str], **kwargs: Any) -> list[float]:
        scores = []
        for completion, pid in zip(completions, problem_id, strict=True):
            text = completion[0]["content"] if isinstance(completion, list) else completion
            correct = float(task.verify(by_id[pid], task.extract(text)))
            scores.append(correct + format_weight * float(template.parse(text).format_ok))
        return scores

    batch = len(step_prompts[0]) * group
    cfg = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        num_generations=group,
        max_completion_length=max_new_tokens,
        max_steps=len(step_prompts),
        shuffle_dataset=False,
        learning_rate=lr,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        **_COMMON,
    )
    timer = StepTimer(after_step)
    trainer = GRPOTrainer(
        model=str(policy_dir),
        reward_funcs=[reward],
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(policy_dir),
        callbacks=[timer],
    )
    trainer.train()
    lengths = [
        h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
    ]
    return [{"step_s": s, "tokens": n * batch} for s, n in zip(timer.steps, lengths, strict=True)]


def sft(
    policy_dir: Path,
    out: Path,
    train: pd.DataFrame,
    steps: int,
    batch: int,
    lr: float,
    max_length: int,
    after_step: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """SFTTrainer on the prompt/response rows of ``train`` as a conversational prompt-completion set
    (loss on the completion only), ``batch`` rows a step in one forward/backward. Returns per step its
    seconds and label tokens (the tokens its collator gave a label)."""
    from trl import SFTConfig, SFTTrainer

    rows = [
        {
            "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": response}],
        }
        for prompt, response in zip(train["prompt"], train["response"], strict=True)
    ]
    cfg = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=lr,
        max_length=max_length,
        **_COMMON,
    )
    timer = StepTimer(after_step)
    trainer = SFTTrainer(
        model=str(policy_dir),
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(policy_dir),
        callbacks=[timer],
    )
    collate, labels = trainer.data_collator, []

    def counting(examples: list[Any]) -> Any:
        collated = collate(examples)
        labels.append(int((collated["labels"] != -100).sum()))
        return collated

    trainer.data_collator = counting
    trainer.train()
    return [{"step_s": s, "labels": n} for s, n in zip(timer.steps, labels, strict=False)]


_COMMON: dict[str, Any] = {
    "logging_steps": 1,
    "report_to": [],
    "save_strategy": "no",
    "bf16": False,
    "use_cpu": True,
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
    "seed": 0,
}
