"""Step 1 of the hybrid data pipeline: N teacher samples per query and mode, verified, on disk.

With ``from_reference`` a query's Think-on samples are its one reference-solution sample instead
(hipo/data/reference.py); Think-off samples always come from the teacher.

Samples go to ``samples.jsonl`` one query per line as each batch finishes, so a crashed run keeps
what it did: a rerun with the same output directory skips the queries already there (a torn last
line is cut off first). ``samples_settings.json`` records the settings that shape the samples (teacher,
samples per mode, sampling, seed); a rerun with other settings, or whose queries have other prompts
under the same ids, is refused instead of labelling the old samples with the new configuration.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hipo import template
from hipo.config import ConfigError, SamplingConfig
from hipo.data.reference import reference_completion
from hipo.engines.base import Completion, Engine
from hipo.storage.jsonl import append_durably, cut_torn_tail, read_complete
from hipo.tasks.base import Problem, Task

SAMPLES_FILE = "samples.jsonl"
SETTINGS_FILE = "samples_settings.json"


def check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to add samples of other ``settings`` to ``out_dir``; record them for the next run. A
    folder without samples takes any settings; one whose samples predate the record, these."""
    path = out_dir / SETTINGS_FILE
    samples = out_dir / SAMPLES_FILE
    has_samples = samples.exists() and samples.stat().st_size > 0
    before = json.loads(path.read_text(encoding="utf-8")) if path.exists() and has_samples else None
    if before is not None and before != settings:
        changed = [k for k in sorted(settings.keys() | before.keys()) if before.get(k) != settings.get(k)]
        shown = "; ".join(f"{k}: {before.get(k)!r} there, {settings.get(k)!r} now" for k in changed[:3])
        raise ConfigError(
            f"{out_dir} holds teacher samples made with other settings ({shown}): resuming would label "
            "them with this configuration; use a new output folder, or the settings it was made with"
        )
    if before is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")


def _check_prompts(
    out_dir: Path, done: dict[tuple[str, str], str], queries: list[tuple[str, Problem]]
) -> None:
    """Refuse a resume whose queries reuse ids of the stored samples for other prompts (another task)."""
    clashes = [p.id for s, p in queries if (s, p.id) in done and done[s, p.id] != p.prompt]
    if clashes:
        raise ConfigError(
            f"{out_dir / SAMPLES_FILE} holds samples of other prompts under {len(clashes)} of these "
            f"query ids (first: {clashes[0]!r}): the task settings changed; use a new output folder"
        )


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
    settings: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Sample and verify every (split, problem) not yet in ``out_dir/samples.jsonl``; returns timings.
    ``from_reference``: Think-on samples from the reference solutions (a row without one fails first).
    ``settings``: what else shapes the samples (see :func:`check_settings`)."""
    path = out_dir / SAMPLES_FILE
    check_settings(
        out_dir,
        {
            **(settings or {}),
            "teacher": engine.name,
            "samples_per_mode": n,
            "sampling": sampling.model_dump(mode="json"),
            "think_on_source": "reference" if from_reference else "teacher",
        },
    )
    cut_torn_tail(path)
    prompts = {(r["split"], r["id"]): r["prompt"] for r in read_complete(path)}
    _check_prompts(out_dir, prompts, queries)
    done = set(prompts)
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
