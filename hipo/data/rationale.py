"""Judge rationales from a strong model behind any OpenAI-compatible endpoint (docs/algorithm.md §2.6).

A rationale must not reveal the answer: the model's text is checked, asked again once with a reminder,
and replaced by the templated text (hipo/tasks/rationale.py) if it still leaks.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from hipo.config import SamplingConfig
from hipo.tasks.rationale import RationaleRequest, TemplateRationaleWriter, leaks_answer
from hipo.template import HIPO_TAGS


def _clean(text: str) -> str:
    """One paragraph without HiPO tags, so the rationale cannot break the response format."""
    for tag in HIPO_TAGS:
        text = text.replace(tag, " ")
    return " ".join(text.split())


def _percent(rate: float) -> str:
    return f"{round(rate * 100)}%"


SYSTEM_PROMPT = (
    "You write the judge rationale of a training example for a model that decides, per query, "
    "whether to reason step by step (Think-on) or answer directly (Think-off). Given the query, the "
    "chosen mode and how often each mode was correct, explain in two or three sentences why this "
    "query does or does not need explicit step-by-step reasoning. Refer to properties of the query, "
    "not to the statistics alone. Never state, compute or hint at the final answer."
)


def user_message(r: RationaleRequest) -> str:
    mode = "Think-on (reason step by step)" if r.mode == "on" else "Think-off (answer directly)"
    return (
        f"Query:\n{r.prompt}\n\nChosen mode: {mode}\n"
        f"Evidence: {r.samples_per_mode} attempts per mode; step-by-step answers were correct "
        f"{_percent(r.p_on)} of the time, direct answers {_percent(r.p_off)}.\n"
        "Write the rationale (two or three sentences, no answer)."
    )


class ChatClient(Protocol):
    """What the writer needs of an engine: one chat completion (hipo.engines.openai_http)."""

    name: str

    def chat(
        self, messages: list[dict[str, str]], sampling: SamplingConfig, sample_index: int = 0
    ) -> str: ...


class LLMRationaleWriter:
    """Rationales from a strong model; bounded concurrency comes from ``max_workers``."""

    def __init__(self, client: ChatClient, max_workers: int = 8, sampling: SamplingConfig | None = None):
        self.client = client
        self.name = client.name
        self.max_workers = max_workers
        self.sampling = sampling or SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=200)
        self.fallbacks = 0
        self._lock = threading.Lock()

    def write(self, requests: list[RationaleRequest]) -> list[str]:
        with ThreadPoolExecutor(self.max_workers) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, r: RationaleRequest) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(r)},
        ]
        for attempt in range(2):
            text = _clean(self.client.chat(messages, self.sampling, sample_index=attempt))
            if text and not leaks_answer(text, r.answer):
                return text
            messages = [
                *messages,
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": "That reveals or hints at the answer. Rewrite it without the answer.",
                },
            ]
        with self._lock:
            self.fallbacks += 1
        return TemplateRationaleWriter.one(r)
