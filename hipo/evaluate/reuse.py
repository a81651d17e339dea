"""Samples scored once are not scored again: what identifies a model's evaluation, and the copy.

The pipeline scores the RL policy in its evaluate step and again beside Cold-Start (on) (arms
``baseline``) or the five arms (arms ``all``). Each scored folder records, in ``eval_run.json``, a
digest of the model's files, of the benchmark problems, the engine kind and the sampling settings; a
later evaluation given that folder as ``earlier`` copies a model's samples whose record matches in all
four instead of generating them, and the runner's resume does the rest. Matching is by content, never
by display name: two steps may give one name to different models.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from hipo.evaluate.benchmarks import Benchmark

RUN_FILE = "eval_run.json"
SAMPLES_FILE = "samples.jsonl"
# what must agree for samples of one folder to stand for another's ("engine" by kind: hf, vllm, scripted)
IDENTITY = ("model", "problems", "eval_sampling")


def model_digest(model: str) -> str:
    """sha256 over the top-level files of a model directory (names and bytes); "scripted" as is."""
    path = Path(model)
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def problems_digest(benchmarks: list[Benchmark]) -> str:
    """sha256 of every benchmark problem's (benchmark, id, prompt, answer), in order."""
    rows = [(b.name, q.id, q.prompt, q.answer) for b in benchmarks for q in b.problems]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _kind(engine: str) -> str:
    return engine.split(":", 1)[0]


def same_evaluation(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``eval_run.json`` records describe the same model, problems, sampling and engine."""
    known = all(a.get(k) is not None for k in IDENTITY)
    return known and all(a.get(k) == b.get(k) for k in IDENTITY) and _kind(a["engine"]) == _kind(b["engine"])


def copy_earlier(earlier: str | Path, out_dir: Path, record: dict[str, Any]) -> Path | None:
    """Copy the folder under ``earlier/models/`` whose record matches ``record`` into a fresh ``out_dir``;
    returns the folder copied from, or None (no match, or ``out_dir`` already holds samples)."""
    if (out_dir / SAMPLES_FILE).exists():
        return None
    for source in sorted(Path(earlier).glob(f"models/*/{RUN_FILE}")):
        if same_evaluation(json.loads(source.read_text(encoding="utf-8")), record):
            shutil.copytree(source.parent, out_dir, dirs_exist_ok=True)
            with (out_dir / SAMPLES_FILE).open(encoding="utf-8") as samples:
                rows = sum(1 for _ in samples)
            print(f"evaluate: {rows} samples of {source.parent} reused, not scored again", file=sys.stderr)
            return source.parent
    return None
