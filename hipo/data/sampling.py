"""Step 1 of the hybrid data pipeline: N teacher samples per query and mode, verified, on disk.

With ``from_reference`` a query's Think-on samples are its one reference-solution sample instead
(hipo/data/reference.py); Think-off samples always come from the teacher.

Samples go to ``samples.jsonl`` one query per line as each batch finishes, so a crashed run keeps
what it did: a rerun with the same output directory skips the queries already there (a torn last
line is cut off first).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hipo import template
from hipo.config import SamplingConfig
from hipo.data.reference import reference_completion
from hipo.engines.base import Completion, Engine
from hipo.jsonl import append_durably, cut_torn_tail, read_complete
from hipo.tasks.base import Problem, Task

SAMPLES_FILE = "samples.jsonl"


def verify_completion(task: Task, problem: Problem, mode: template.Mode, completion: Completion) -> list[Any]:
    """``[text, correct, num_tokens]``: correct only when well formed, in the forced mode and right."""
    parsed = template.parse(completion.text)
    correct = parsed.format_ok and parsed.mode == mode and task.verify(problem, task.extract(completion.text))
    return [completion.text, correct, completion.num_tokens]


def record(task: Task, split: str, problem: Problem, samples: dict[str, list[Completion]]) -> dict[str, Any]:
    return {
        "id": problem.id,
        "split": split,
        "prompt": problem.prompt,
        "answer": problem.answer,
        "source": problem.source,
        "level": problem.difficulty,
        **{
            mode: [verify_completion(task, problem, mode, c) for c in samples[mode]] for mode in ("on", "off")
        },
    }


def sample_queries(
    task: Task,
    engine: Engine,
    queries: list[tuple[str, Problem]],
    out_dir: Path,
    n: int,
    sampling: SamplingConfig,
    batch_size: int = 256,
    from_reference: bool = False,
) -> dict[str, float]:
    """Sample and verify every (split, problem) not yet in ``out_dir/samples.jsonl``; returns timings.
    ``from_reference``: Think-on samples from the reference solutions (a row without one fails first)."""
    path = out_dir / SAMPLES_FILE
    cut_torn_tail(path)
    done = {(r["split"], r["id"]) for r in read_complete(path)}
    pending = [(s, p) for s, p in queries if (s, p.id) not in done]
    references = {(s, p.id): reference_completion(p) for s, p in pending} if from_reference else {}
    started = time.perf_counter()
    bar = tqdm(
        total=len(queries),
        initial=len(queries) - len(pending),
        unit="query",
        desc="teacher samples",
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
        dynamic_ncols=True,
    )
    with bar, path.open("a", encoding="utf-8") as out:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            prompts = [p.prompt for _, p in batch]
            by_mode = {
                mode: [[references[s, p.id]] for s, p in batch]
                if mode == "on" and from_reference
                else engine.generate(prompts, n, sampling, forced_mode=mode)
                for mode in ("on", "off")
            }
            append_durably(
                out,
                (
                    record(task, split, p, {m: by_mode[m][i] for m in by_mode})
                    for i, (split, p) in enumerate(batch)
                ),
            )
            bar.update(len(batch))
    return {"sampling_s": time.perf_counter() - started, "resumed_queries": float(len(done))}
