"""An OpenAI-compatible chat-completions endpoint (vLLM server, DeepSeek, OpenAI) as teacher or judge.

Every request is one sample: ``n`` samples are ``n`` requests with ``sample_index`` 0..n-1 and
``seed = seed + sample_index`` (not the API's ``n``), so each is cached on its own. The cache key is a
hash of model, messages, sampling parameters, extra body and sample index (not the URL: a restarted
server on another port still hits it); entries are written atomically as responses arrive, so a
crashed run keeps what it finished and a rerun sends only the rest. Requests run on at most
``max_concurrency`` threads; 408/409/429/5xx, timeouts and connection errors are retried with
exponential backoff and jitter (``Retry-After`` wins when sent, capped at 60 s); other statuses fail at
once with an EngineError naming the endpoint, the status and the fix. An HTTP 200 whose body is cut
short or is no chat completion (a proxy's error page) is retried like a 5xx.

Forced modes: the system prompt names the mode. With ``prefill_mode=True`` the request also ends with
an assistant message holding the prefill and asks the server to continue it (vLLM's
``continue_final_message``); without it the model may ignore the instruction, so callers check
``template.parse(text).mode``. Text always holds the whole response, the prefill included.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import openai

from hipo import template
from hipo.config import EndpointConfig, SamplingConfig
from hipo.engines.base import Completion, EngineError
from hipo.engines.cache import ResponseCache
from hipo.engines.prompting import is_greedy, judges_for

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUSES = {408, 409, 429}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
DEFAULT_SYSTEM_PROMPT = (
    "Answer in this exact format. First decide whether the question needs step-by-step reasoning and "
    "say why, briefly, in a judge block. Then write one mode tag: <think_on> to reason step by step in "
    "a think block before answering, or <think_off> to answer directly. End with the final answer "
    "alone in an answer block.\n\nThink-on:\n"
    + template.render("on", "why this needs reasoning", "final answer", think="step-by-step reasoning")
    + "\n\nThink-off:\n"
    + template.render("off", "why this can be answered directly", "final answer")
)
MODE_INSTRUCTION = {
    "on": "\n\nMode for this query: Think-on. Write <think_on> after the judge block, then a think block.",
    "off": "\n\nMode for this query: Think-off. Write <think_off> after the judge block and no think block.",
}
CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}


@dataclass(frozen=True)
class Usage:
    requests: int = 0  # answered by the endpoint
    cached: int = 0  # served from the on-disk cache, free
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def _retry_after(response: Any) -> float | None:
    """Seconds from Retry-After (seconds or HTTP date) or retry-after-ms, capped at 60."""
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
        return min(max(seconds, 0.0), 60.0)
    return None


class OpenAIEngine:
    def __init__(
        self,
        endpoint: EndpointConfig,
        cache_dir: Path | None,
        system_prompt: str | None = None,
        *,
        seed: int = 0,
        prefill_mode: bool = False,
        backoff_s: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.base_url = endpoint.base_url or DEFAULT_BASE_URL
        self.where = f"endpoint {self.base_url} (model {endpoint.model or '?'})"
        if not endpoint.model:
            raise EngineError(f"{self.where}: no model name: set the endpoint's `model` field")
        key = endpoint.api_key()
        if not key:
            if not _is_loopback(self.base_url):
                raise EngineError(
                    f"{self.where}: no API key: set the environment variable {endpoint.api_key_env}"
                )
            key = "EMPTY"  # local servers (vLLM) accept any key
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=endpoint.timeout_s, max_retries=0
        )
        self.cache = ResponseCache(Path(cache_dir)) if cache_dir is not None else None
        self.system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.seed, self.prefill_mode, self.backoff_s = seed, prefill_mode, backoff_s
        self.name = f"openai:{endpoint.model}"
        self._usage = Usage()
        self._lock = threading.Lock()
        self._jitter = random.Random()

    @property
    def usage(self) -> Usage:
        with self._lock:
            return self._usage

    def _add(self, **counts: Any) -> None:
        with self._lock:
            self._usage = replace(self._usage, **{k: getattr(self._usage, k) + v for k, v in counts.items()})

    # ------------------------------------------------------------ entry points

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig, sample_index: int = 0) -> str:
        """One plain chat completion's text."""
        return self._complete(messages, sampling, sample_index, None)[0]

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        if forced_mode not in ("auto", "on", "off"):
            raise EngineError(f"forced_mode must be 'auto', 'on' or 'off', got {forced_mode!r}")
        system = self.system_prompt + MODE_INSTRUCTION.get(forced_mode, "")
        forced = forced_mode != "auto" and self.prefill_mode
        prefills = [template.prefill(forced_mode, j) if forced else "" for j in judges_for(prompts, judges)]
        jobs = [
            partial(self._sample, system, prompt, prefill, sampling, i)
            for prompt, prefill in zip(prompts, prefills, strict=True)
            for i in range(n)
        ]
        flat = self._run_all(jobs)
        return [flat[k * n : (k + 1) * n] for k in range(len(prompts))]

    def _sample(
        self, system: str, prompt: str, prefill: str, sampling: SamplingConfig, index: int
    ) -> Completion:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        if prefill:
            messages.append({"role": "assistant", "content": prefill})
        content, finish = self._complete(messages, sampling, index, CONTINUE if prefill else None)
        return Completion(prefill + content, finish_reason=finish if finish in ("stop", "length") else None)

    # ------------------------------------------------------------ machinery

    def _run_all(self, jobs: list[Callable[[], T]]) -> list[T]:
        """Run jobs on at most max_concurrency threads; on the first error cancel the rest and raise it."""
        if not jobs:
            return []
        with ThreadPoolExecutor(min(self.endpoint.max_concurrency, len(jobs))) as pool:
            futures = [pool.submit(j) for j in jobs]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
        failed = next((f for f in futures if not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def _complete(
        self,
        messages: list[dict[str, str]],
        sampling: SamplingConfig,
        sample_index: int,
        extra_body: dict[str, Any] | None,
    ) -> tuple[str, str | None]:
        greedy = is_greedy(sampling)
        params = {
            "model": self.endpoint.model,
            "messages": messages,
            "temperature": 0.0 if greedy else sampling.temperature,
            "top_p": 1.0 if greedy else sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "seed": self.seed + sample_index,
        }
        key = ResponseCache.key([params, extra_body, sample_index])
        entry = self.cache.get(key) if self.cache is not None else None
        if entry is not None:
            self._add(cached=1)
            return entry["content"], entry["finish_reason"]
        response = self._request(params, extra_body)
        if not response.choices:
            raise EngineError(f"{self.where} answered with no choices: check that it serves chat completions")
        choice = response.choices[0]
        content, finish = choice.message.content or "", choice.finish_reason
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        if self.cache is not None:
            self.cache.put(key, {"content": content, "finish_reason": finish})
        cost = (
            prompt_tokens * self.endpoint.usd_per_1k_prompt_tokens
            + completion_tokens * self.endpoint.usd_per_1k_completion_tokens
        ) / 1000.0
        self._add(requests=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost)
        return content, finish

    def _request(self, params: dict[str, Any], extra_body: dict[str, Any] | None) -> Any:
        retries, attempt = self.endpoint.max_retries, 0
        while True:
            wait_s: float | None = None
            try:
                response = self._client.chat.completions.create(**params, extra_body=extra_body)
                if isinstance(getattr(response, "choices", None), list):
                    return response
                cause = "HTTP 200 with a body that is not a chat completion"
            except ValueError:  # the client's json.loads of a truncated or non-JSON body
                cause = "HTTP 200 with a truncated or non-JSON body"
            except openai.APIConnectionError as error:  # includes APITimeoutError
                cause = (
                    "timeout" if isinstance(error, openai.APITimeoutError) else f"connection error ({error})"
                )
            except openai.APIStatusError as error:
                status = error.status_code
                if status not in _RETRY_STATUSES and status < 500:
                    raise EngineError(self._fatal(status, error)) from None
                cause, wait_s = f"HTTP {status}", _retry_after(error.response)
            except openai.APIError as error:
                raise EngineError(f"{self.where} sent an unusable response: {error}") from None
            if attempt == retries:
                raise EngineError(
                    f"{self.where} still failing after {retries} retries (last: {cause}): check that the "
                    "server is up and not overloaded, or raise max_retries / timeout_s"
                )
            if wait_s is None:
                wait_s = min(self.backoff_s * 2**attempt, 60.0) * self._jitter.uniform(0.5, 1.0)
            self._add(retries=1)
            attempt += 1
            log.warning("%s: %s, retry %d/%d in %.2fs", self.where, cause, attempt, retries, wait_s)
            time.sleep(wait_s)

    def _fatal(self, status: int, error: openai.APIStatusError) -> str:
        fix = {
            401: f"set the environment variable {self.endpoint.api_key_env} to a valid key",
            403: f"check that the key in {self.endpoint.api_key_env} may use this model",
            404: "check base_url (it usually ends in /v1) and the model name",
        }.get(status, "check the request parameters against the endpoint's documentation")
        return f"{self.where} refused the request (HTTP {status}: {error.message}): {fix}"
