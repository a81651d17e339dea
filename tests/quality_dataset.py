"""A GOOD hybrid dataset for the data-quality gate, built from the arithmetic task and scripted teacher.

Importable from tests (tests/ is on sys.path through tests/conftest.py): ``build_good_rows`` gives one
frame per split in the schema of :mod:`hipo.storage.datasets`, ``write_dataset`` writes them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from hipo import template
from hipo.storage.datasets import DATASET_COLUMNS
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.teacher import ScriptedTeacher

SAMPLES = 4  # teacher samples per mode behind p_on / p_off


def build_good_rows(
    n_train: int = 300, n_eval: int = 75, seed: int = 0, levels: tuple[int, ...] = (1, 2, 3, 4, 5)
) -> dict[str, pd.DataFrame]:
    """A schema-complete hybrid dataset: think-off for levels 1–3, think-on for 4–5, like the ladder.

    Prompts are unique per split while ``n`` stays below what a level holds (d1: 80 train prompts).
    """
    task, teacher = ArithmeticTask(levels), ScriptedTeacher(seed=seed)
    rng = random.Random(seed)
    frames = {}
    for split, n in (("train", n_train), ("eval", n_eval)):
        rows = []
        for problem in task.problems(split, n=n, seed=seed):
            samples = {m: teacher.sample(problem, m, SAMPLES) for m in template.MODE_TAGS}
            rates = {
                m: sum(task.verify(problem, task.extract(r)) for r in rs) / SAMPLES
                for m, rs in samples.items()
            }
            mode: template.Mode = "on" if (problem.difficulty or 0) >= 4 else "off"
            think = problem.reference if mode == "on" else None
            judge = (
                f"Level {problem.difficulty}: {'needs' if mode == 'on' else 'does not need'} step by step."
            )
            response = template.render(mode, judge, problem.answer, think=think)
            p_off = rates["off"]
            rows.append(
                {
                    "id": problem.id,
                    "source": problem.source,
                    "prompt": problem.prompt,
                    "response": response,
                    "mode": mode,
                    "preferred_mode": mode,
                    "answer": problem.answer,
                    "reference_answer": problem.answer,
                    "p_on": rates["on"],
                    "p_off": p_off,
                    "difficulty": "easy" if p_off >= 0.75 else "hard" if p_off < 0.25 else "medium",
                    "level": problem.difficulty,
                    "n_tokens": len(response),
                    "random_mode": rng.random() < 0.01,
                    "rationale_model": "template",
                    "teacher": "scripted",
                    "seed": seed,
                    "config_hash": "0123456789abcdef",
                }
            )
        frames[split] = pd.DataFrame(rows).astype(DATASET_COLUMNS)
    return frames


def write_dataset(frames: dict[str, pd.DataFrame], directory: Path, suffix: str = ".parquet") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        if suffix == ".parquet":
            frame.to_parquet(directory / f"{split}{suffix}", index=False)
        else:
            frame.to_json(directory / f"{split}{suffix}", orient="records", lines=True, force_ascii=False)
    return directory
