"""The hybrid data pipeline (docs/algorithm.md §2): teacher samples → mode choice → rationales → datasets.

Output directory::

    samples.jsonl            every verified teacher sample (resumable; re-selection needs no new samples)
    mix/train.parquet        Cold-Start (mix): the preferred mode's shortest correct response
    mix/eval.parquet
    on/train.parquet         Cold-Start (on) ablation: always the shortest correct Think-on response
    on/eval.parquet
    stats.json               counts per mode, difficulty and level, pass-rate histograms, drops, usage
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hipo import template
from hipo.config import RunConfig
from hipo.data.sampling import sample_queries
from hipo.data.selection import Choice, Sample, bucket, choose, shortest_correct
from hipo.engines.base import Completion, Engine, EngineError
from hipo.storage.datasets import COLD_START_SETS, DATASET_COLUMNS
from hipo.storage.jsonl import read_complete
from hipo.tasks.base import Problem, Task, TaskError
from hipo.tasks.rationale import RationaleRequest, RationaleWriter


def split_queries(task: Task, config: RunConfig) -> tuple[list[tuple[str, Problem]], Counter[str]]:
    """Train and eval problems with unique prompts and no prompt in both splits (eval wins)."""
    dropped: Counter[str] = Counter()
    eval_problems = task.problems("eval", config.task.eval_size, config.seed)
    eval_prompts = {p.prompt for p in eval_problems}
    seen: set[str] = set()
    queries: list[tuple[str, Problem]] = []
    for split, problems in (
        ("eval", eval_problems),
        ("train", task.problems("train", config.task.train_size, config.seed)),
    ):
        for p in problems:
            if p.prompt in seen:
                dropped[
                    "eval_overlap" if split == "train" and p.prompt in eval_prompts else "duplicate_prompt"
                ] += 1
                continue
            seen.add(p.prompt)
            queries.append((split, p))
    if not queries:
        raise TaskError(f"task {task.name!r} produced no problems: check task.train_size and task.eval_size")
    return queries, dropped


def _samples(raw: list[list[Any]]) -> list[Sample]:
    return [Sample(text, bool(correct), int(num_tokens)) for text, correct, num_tokens in raw]


def on_only_choice(record: dict[str, Any], config: RunConfig) -> Choice | None:
    """The Cold-Start (on) ablation: the shortest correct Think-on response, whatever the pass rates."""
    on, off = _samples(record["on"]), _samples(record["off"])
    kept = shortest_correct(on)
    if kept is None:
        return None
    base = choose(record["id"], on, off, config.data)
    preferred = base.preferred if base else "on"
    p_on, p_off = (sum(s.correct for s in x) / len(x) for x in (on, off))
    return Choice("on", preferred, kept, p_on, p_off, bucket(p_off, config.data), False)


def count_tokens(engine: Engine, text: str) -> int:
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is not None:
        return len(tokenizer.encode(text, add_special_tokens=False))
    return Completion(text).num_tokens


def build_rows(
    records: list[dict[str, Any]],
    choices: list[Choice],
    rationales: list[str],
    lineage: dict[str, Any],
    engine: Engine,
) -> pd.DataFrame:
    rows = []
    for r, c, rationale in zip(records, choices, rationales, strict=True):
        parsed = template.parse(c.sample.text)
        assert parsed.answer is not None  # kept samples are well formed
        response = template.render(c.mode, rationale, parsed.answer, parsed.think)
        rows.append(
            {
                "id": r["id"],
                "source": r["source"],
                "split": r["split"],
                "prompt": r["prompt"],
                "response": response,
                "mode": c.mode,
                "preferred_mode": c.preferred,
                "answer": parsed.answer,
                "reference_answer": r["answer"],
                "p_on": c.p_on,
                "p_off": c.p_off,
                "difficulty": c.bucket,
                "level": r["level"],
                "n_tokens": count_tokens(engine, response),
                "random_mode": c.random_mode,
                **lineage,
            }
        )
    return pd.DataFrame(rows, columns=[*DATASET_COLUMNS, "split"]).astype(DATASET_COLUMNS)


def _usage(obj: Any) -> dict[str, Any] | None:
    usage = getattr(obj, "usage", None)
    return asdict(usage) if is_dataclass(usage) and not isinstance(usage, type) else None


def summarize(frames: dict[str, pd.DataFrame], records: list[dict[str, Any]], drops: Counter[str]) -> dict:
    mix = frames["mix"]
    histogram = {
        key: dict(
            sorted(
                Counter(f"{sum(c for _, c, _ in r[key]) / max(len(r[key]), 1):.3f}" for r in records).items()
            )
        )
        for key in ("on", "off")
    }
    per_split: dict[str, Any] = {}
    for split, part in mix.groupby("split"):
        per_split[str(split)] = {
            "rows": len(part),
            "think_on_share": float((part["mode"] == "on").mean()),
            "modes": part["mode"].value_counts().to_dict(),
            "difficulty": {str(k): v["mode"].value_counts().to_dict() for k, v in part.groupby("difficulty")},
            "level": {str(k): v["mode"].value_counts().to_dict() for k, v in part.groupby("level")},
            "random_mode_rows": int(part["random_mode"].sum()),
            "mean_tokens": {str(k): float(v["n_tokens"].mean()) for k, v in part.groupby("mode")},
        }
    return {
        "queries": len(records),
        "splits": per_split,
        "on_only_rows": frames["on"]["split"].value_counts().to_dict() if len(frames["on"]) else {},
        "dropped": dict(drops),
        "pass_rate_histogram": histogram,
    }


def check_kept_share(
    kept: int, records: list[dict[str, Any]], config: RunConfig, teacher: str, out: Path
) -> None:
    """Fail, before any rationale is paid for, when fewer than ``data.min_kept_share`` of the queries
    have a correct, well-formed teacher sample (a teacher answering empty or unparsable text has none)."""
    share = kept / len(records) if records else 0.0
    if records and share >= config.data.min_kept_share and kept > 0:
        return
    samples = [s for r in records for mode in ("on", "off") for s in r[mode]]
    empty = sum(not str(s[0]).strip() for s in samples)
    raise EngineError(
        f"teacher {teacher}: only {kept} of {len(records)} queries ({share:.0%}) got a correct, well-formed "
        f"sample, below data.min_kept_share={config.data.min_kept_share} ({empty} of {len(samples)} samples "
        f"were empty): check the teacher's answers in {out / 'samples.jsonl'}"
    )


def generate_dataset(
    config: RunConfig,
    task: Task,
    engine: Engine,
    writer: RationaleWriter,
    out_dir: str | Path,
    batch_size: int = 256,
    queries: list[tuple[str, Problem]] | None = None,
) -> dict[str, Any]:
    """Run the whole §2 pipeline into ``out_dir``; returns (and writes) the stats. ``queries``:
    (split, problem) pairs prepared earlier (default: :func:`split_queries` of the task)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    queries, drops = split_queries(task, config) if queries is None else (queries, Counter())
    from_reference = config.data.think_on_source == "reference"
    timing = sample_queries(
        task,
        engine,
        queries,
        out,
        config.data.samples_per_mode,
        config.rollout_sampling,
        batch_size,
        from_reference,
        settings={
            "data.seed": config.data.seed,
            "data.teacher_endpoint.prefill": config.data.teacher_endpoint.prefill,
        },
    )
    wanted = {(s, p.id) for s, p in queries}
    records = [r for r in read_complete(out / "samples.jsonl") if (r["split"], r["id"]) in wanted]
    teacher = f"reference+{engine.name}" if from_reference else engine.name
    lineage = {
        "rationale_model": writer.name,
        "teacher": teacher,
        "seed": config.seed,
        "config_hash": config.config_hash(),
    }
    frames: dict[str, pd.DataFrame] = {}
    rationale_started = time.perf_counter()
    for name in COLD_START_SETS:
        kept, choices = [], []
        for r in records:
            c = (
                choose(r["id"], _samples(r["on"]), _samples(r["off"]), config.data)
                if name == "mix"
                else on_only_choice(r, config)
            )
            if c is None:
                if name == "mix":
                    drops["no_correct_response"] += 1
                continue
            kept.append(r)
            choices.append(c)
        if name == "mix":
            check_kept_share(len(kept), records, config, teacher, out)
        requests = [
            RationaleRequest(
                r["id"], r["prompt"], c.mode, c.p_on, c.p_off, config.data.samples_per_mode, r["answer"]
            )
            for r, c in zip(kept, choices, strict=True)
        ]
        frames[name] = build_rows(kept, choices, writer.write(requests), lineage, engine)
        (out / name).mkdir(exist_ok=True)
        for split in ("train", "eval"):
            part = frames[name][frames[name]["split"] == split] if len(frames[name]) else frames[name]
            part.drop(columns=["split"], errors="ignore").to_parquet(
                out / name / f"{split}.parquet", index=False
            )
    stats = summarize(frames, records, drops)
    stats.update(
        teacher=teacher,
        rationale_model=writer.name,
        config_hash=config.config_hash(),
        usage={"teacher": _usage(engine), "judge": _usage(getattr(writer, "client", None))},
        seconds={
            **timing,
            "rationale_s": time.perf_counter() - rationale_started,
            "total_s": time.perf_counter() - started,
        },
    )
    (out / "stats.json").write_text(json.dumps(stats, indent=2, default=str))
    return stats
