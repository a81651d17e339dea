"""Running benchmarks through an engine: auto mode, optionally both forced modes, crash-safe and resumable.

Each batch's scored samples are appended to ``out_dir/samples.jsonl`` (flushed and fsynced) as soon as
the batch finishes, so a crash keeps them; a rerun with the same ``out_dir`` cuts a torn last line and
skips every (benchmark, pass, problem id) already there. ``eval_run.json`` records the engine, the
model's digest, the problems' digest and the sampling settings; a rerun with other sampling or another
model is refused rather than mixing their samples. ``earlier`` folders are reused: evaluate/reuse.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hipo import template
from hipo.config import ConfigError, RunConfig
from hipo.engines.base import Completion, Engine
from hipo.evaluate.benchmarks import Benchmark
from hipo.evaluate.metrics import PASSES, EvalResult
from hipo.evaluate.reuse import RUN_FILE, SAMPLES_FILE, copy_earlier, problems_digest
from hipo.storage.jsonl import append_durably, cut_torn_tail, read_complete
from hipo.tasks.base import Problem, Task


def score(
    task: Task, benchmark: str, pass_: str, problem: Problem, completion: Completion, label: str | None
) -> dict[str, Any]:
    """One samples.jsonl row: the response, its parse, its answer and verdict, its length."""
    parsed = template.parse(completion.text)
    answer = task.extract(completion.text)
    return {
        "benchmark": benchmark,
        "pass": pass_,
        "id": problem.id,
        "prompt": problem.prompt,
        "difficulty": problem.difficulty,
        "gold": problem.answer,
        "label": label if pass_ == "auto" else None,
        "mode": parsed.mode,
        "format_ok": parsed.format_ok,
        "correct": bool(task.verify(problem, answer)),
        "tokens": completion.num_tokens,
        "finish_reason": completion.finish_reason,
        "answer": answer,
        "text": completion.text,
    }


def preflight_models(models: dict[str, str]) -> None:
    """Refuse, before anything is generated, a model that is not a loadable HiPO policy folder (its
    tokenizer lacks the HiPO tokens or the chat template, or belongs to another model): it would only
    score 0. "scripted" is the scripted teacher."""
    from hipo.models.folder import ModelError, check_model_folder

    for name, model in models.items():
        if model == "scripted":
            continue
        if "://" in model and not model.startswith("file://"):
            raise ModelError(
                f"model folder {model} ({name}): evaluate serves local folders only: copy it here"
            )
        check_model_folder(model.removeprefix("file://"), hipo=True)


def _check_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to add samples of other sampling settings or another model to ``out_dir``; record the run."""
    path = out_dir / RUN_FILE
    before = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if before and before["eval_sampling"] != record["eval_sampling"]:
        raise ConfigError(
            f"{out_dir} holds samples taken with eval_sampling {before['eval_sampling']}, not "
            f"{record['eval_sampling']}: use a fresh output directory or the same settings"
        )
    if before.get("model") and record["model"] and before["model"] != record["model"]:
        raise ConfigError(
            f"{out_dir} holds samples of another model (files digest {before['model'][:12]}, this one "
            f"{record['model'][:12]}): use a fresh output directory for each model"
        )
    path.write_text(json.dumps({**before, **record}, indent=2), encoding="utf-8")


def _progress(engine: Engine, bench: str, pass_: str, done: int, total: int, new: int, t0: float) -> None:
    rate = new / max(time.perf_counter() - t0, 1e-9)
    eta = tqdm.format_interval((total - done) / rate) if rate else "?"
    print(
        f"evaluate {engine.name}: {bench} [{pass_}] {done}/{total} samples  {rate:.1f} samples/s  ETA {eta}",
        file=sys.stderr,
        flush=True,
    )


def _count_judges(counts: dict[str, Counter[tuple[str, str]]], rows: list[dict[str, Any]]) -> None:
    """Count each auto sample's (mode, judge text) under its benchmark."""
    for r in rows:
        parsed = template.parse(r["text"])
        if parsed.mode is not None and r["benchmark"] in counts:
            counts[r["benchmark"]][(parsed.mode, (parsed.judge or "").strip())] += 1


def _usual_judge(counts: Counter[tuple[str, str]], mode: str) -> str:
    """The judge text most often written with ``mode`` ("" when the model never chose it)."""
    return max(((n, judge) for (m, judge), n in counts.items() if m == mode), default=(0, ""))[1]


def evaluate_model(
    engine: Engine,
    benchmarks: list[Benchmark],
    config: RunConfig,
    out_dir: Path,
    forced_passes: bool | None = None,
    labels: dict[str, str] | None = None,
    model_digest: str | None = None,
    earlier: str | Path | None = None,
) -> EvalResult:
    """Score every benchmark in auto mode (and forced on/off when ``forced_passes``, default
    ``config.eval.forced_mode_passes``) with ``config.eval_sampling``, one sample per problem.

    A forced pass prefills the judge text the model wrote most often in the auto pass when it chose
    that mode: a policy trained on judge texts commits to a mode in its judge already, so an empty
    judge, or its own judge for the other mode, would be a malformed prefix and measure nothing.
    ``labels`` maps prompts to the preferred mode ("on"/"off") for mode-choice accuracy.
    ``model_digest`` (reuse.model_digest of the model served) is recorded; with it, a fresh ``out_dir``
    starts from the matching folder of an ``earlier`` evaluation's ``models/`` when there is one.
    """
    forced = config.eval.forced_mode_passes if forced_passes is None else forced_passes
    passes = PASSES if forced else ("auto",)
    out_dir = Path(out_dir)
    record = {
        "engine": engine.name,
        "eval_sampling": config.eval_sampling.model_dump(mode="json"),
        "model": model_digest,
        "problems": problems_digest(benchmarks),
    }
    if earlier and model_digest and (copied := copy_earlier(earlier, out_dir, record)):
        record["copied_from"] = str(copied)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run(out_dir, record)
    path = out_dir / SAMPLES_FILE
    cut_torn_tail(path)
    kept = list(read_complete(path))
    done = {(r["benchmark"], r["pass"], r["id"]) for r in kept}
    judges = {b.name: Counter[tuple[str, str]]() for b in benchmarks}
    _count_judges(judges, [r for r in kept if r["pass"] == "auto"])
    keys = {(b.name, p, q.id) for b in benchmarks for p in passes for q in b.problems}
    finished = len(keys & done)
    if finished:
        print(f"evaluate {engine.name}: resuming, {finished} samples already in {path}", file=sys.stderr)
    labels = labels or {}
    batch_size, t0, new = config.eval.batch_size, time.perf_counter(), 0
    with path.open("a", encoding="utf-8") as out:
        for bench in benchmarks:
            for pass_ in passes:
                pending = [q for q in bench.problems if (bench.name, pass_, q.id) not in done]
                for start in range(0, len(pending), batch_size):
                    batch = pending[start : start + batch_size]
                    forced_judges = (
                        None if pass_ == "auto" else [_usual_judge(judges[bench.name], pass_)] * len(batch)
                    )
                    outputs = engine.generate(
                        [q.prompt for q in batch], 1, config.eval_sampling, pass_, forced_judges
                    )
                    rows = [
                        score(bench.task, bench.name, pass_, q, c[0], labels.get(q.prompt))
                        for q, c in zip(batch, outputs, strict=True)
                    ]
                    append_durably(out, rows)
                    if pass_ == "auto":
                        _count_judges(judges, rows)
                    new += len(batch)
                    _progress(engine, bench.name, pass_, finished + new, len(keys), new, t0)
    return load_result(out_dir, engine.name, keys)


def load_result(out_dir: Path, model: str, keys: set[tuple[str, str, str]] | None = None) -> EvalResult:
    """The EvalResult of a samples file (only ``keys`` when given; the first row of each key)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in read_complete(Path(out_dir) / SAMPLES_FILE):
        key = (r["benchmark"], r["pass"], r["id"])
        if (keys is None or key in keys) and key not in rows:
            rows[key] = r
    return EvalResult.from_rows(model, list(rows.values()))
