"""The data steps as one call each, built from the run configuration (what components and the CLI call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hipo.config import RunConfig
from hipo.data.pipeline import generate_dataset
from hipo.data.rationale import LLMRationaleWriter
from hipo.engines import make_teacher
from hipo.tasks import task_from_config
from hipo.tasks.base import Problem
from hipo.tasks.rationale import RationaleWriter, TemplateRationaleWriter


def rationale_writer(config: RunConfig, cache_dir: Path) -> RationaleWriter:
    """The judge-rationale writer named by ``data.judge``; the strong model's answers are cached."""
    if config.data.judge == "template":
        return TemplateRationaleWriter()
    from hipo.engines.openai_http import OpenAIEngine

    endpoint = config.data.judge_endpoint
    client = OpenAIEngine(endpoint, cache_dir, seed=config.data.seed)
    return LLMRationaleWriter(client, max_workers=endpoint.max_concurrency)


def generate(
    config: RunConfig,
    out_dir: str | Path,
    batch_size: int = 256,
    queries: list[tuple[str, Problem]] | None = None,
) -> dict[str, Any]:
    """Build the cold-start datasets into ``out_dir`` (resumable); returns the stats. ``queries``:
    the (split, problem) pairs of the prepare step (default: drawn from the configured task)."""
    out = Path(out_dir)
    task = task_from_config(config.task)
    engine = make_teacher(config.data, cache_dir=out / "cache" / "teacher")
    writer = rationale_writer(config, out / "cache" / "judge")
    return generate_dataset(config, task, engine, writer, out, batch_size=batch_size, queries=queries)
