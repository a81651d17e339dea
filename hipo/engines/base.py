"""The generation interface every engine implements (scripted teacher, transformers, vLLM, HTTP).

An engine takes user prompts (the question text; the engine applies the chat template) and returns,
per prompt, ``n`` completions. ``forced_mode`` "on"/"off" prefills the response up to and including
the mode tag (template.prefill), with the judge text of ``judges`` (one per prompt; empty when not
given); "auto" leaves the choice to the model. ``Completion.text`` is the
whole response from the first assistant token, the prefill included, so ``template.parse`` sees it all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hipo import template
from hipo.config import SamplingConfig

_CHAR_TOKENS = re.compile("|".join(re.escape(t) for t in template.HIPO_TAGS) + r"|[\s\S]")


class EngineError(RuntimeError):
    """A generation request that cannot be served; the message names the engine, the cause and the fix."""


@dataclass(frozen=True)
class Completion:
    text: str
    token_ids: tuple[int, ...] | None = None  # response tokens, prefill included, where the engine has them
    logprobs: tuple[float, ...] | None = None  # one per generated token, where the engine has them
    finish_reason: str | None = None  # "stop" | "length" | None

    @property
    def num_tokens(self) -> int:
        """Tokens by the engine's tokenizer, else characters with each HiPO tag counted as one token."""
        if self.token_ids is not None:
            return len(self.token_ids)
        return len(_CHAR_TOKENS.findall(self.text))


@runtime_checkable
class Engine(Protocol):
    name: str  # engine and model for lineage, e.g. "scripted", "hf:/models/x", "openai:deepseek-chat"

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]: ...
