"""Generation with transformers ``generate``: batched, left padded, KV cache, HiPO chat template.

Log-probs: for each generated token, ``log_softmax`` of the model's raw logits at that step (a
logits processor placed before the sampling warpers records them), i.e. the distribution at
temperature 1 without top-p — vLLM's default ("raw_logprobs") and what a trainer recomputes as
π_old. For rollouts at temperature 1 and top_p 1 this is also the sampling distribution. Only one
step's distribution is held at a time, so memory does not grow with vocabulary × length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessorList
from transformers.generation.logits_process import LogitsProcessor

from hipo import template
from hipo.config import SamplingConfig
from hipo.engines.base import Completion, EngineError
from hipo.engines.prompting import chat_prompt, is_greedy, judges_for, stop_token_ids


class _SampledLogprobs(LogitsProcessor):
    """Keeps the log-softmax of the latest step and gathers it at the token sampled from it."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None
        self.taken: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.last is not None:
            self.taken.append(self.last.gather(1, input_ids[:, -1:]).squeeze(1))
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """[batch, generated] log-probs aligned with ``new_tokens``."""
        length = new_tokens.shape[1]
        if len(self.taken) < length and self.last is not None:
            self.taken.append(self.last.gather(1, new_tokens[:, len(self.taken)].unsqueeze(1)).squeeze(1))
        if length == 0:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(self.taken[:length], dim=1).cpu()


class HFEngine:
    """A causal LM from a local directory (or in memory, with its tokenizer) behind the engine interface.

    An in-memory model is used as it is: moved to ``device`` and put in eval mode (a trainer that
    shares it switches it back with ``model.train()``).

    ``seed`` seeds a generator that draws one torch seed per batch (the global torch RNG is restored
    afterwards), so the same engine seed and the same calls give the same samples.
    """

    def __init__(
        self,
        model_dir_or_model: str | Path | Any,
        tokenizer: Any = None,
        batch_size: int = 32,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        if isinstance(model_dir_or_model, str | Path):
            path = Path(model_dir_or_model)
            if not (path / "config.json").is_file():
                raise EngineError(
                    f"hf engine: {path} is not a model directory (no config.json): pass a directory "
                    "written by save_pretrained"
                )
            model = AutoModelForCausalLM.from_pretrained(path)
            tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
            self.name = f"hf:{path}"
        else:
            if tokenizer is None:
                raise EngineError("hf engine: pass the tokenizer together with an in-memory model")
            model = model_dir_or_model
            self.name = f"hf:{getattr(model.config, 'name_or_path', '') or type(model).__name__}"
        if batch_size < 1:
            raise EngineError(f"hf engine: batch_size must be >= 1, got {batch_size}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._stop_ids = stop_token_ids(tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._stop_ids[0]
        self._rng = random.Random(seed)

    def _encode(
        self, prompt: str, forced_mode: template.ForcedMode, judge: str
    ) -> tuple[list[int], list[int], str]:
        base, prefill = chat_prompt(self.tokenizer, prompt, forced_mode, judge)
        encode = self.tokenizer.encode
        return encode(base, add_special_tokens=False), encode(prefill, add_special_tokens=False), prefill

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
        judges = judges_for(prompts, judges)
        encoded = [self._encode(p, forced_mode, j) for p, j in zip(prompts, judges, strict=True)]
        rows = [encoded[i] for i in range(len(prompts)) for _ in range(n)]
        flat: list[Completion] = []
        for start in range(0, len(rows), self.batch_size):
            flat.extend(self._generate_batch(rows[start : start + self.batch_size], sampling))
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _config(self, sampling: SamplingConfig) -> GenerationConfig:
        common = {
            "max_new_tokens": sampling.max_new_tokens,
            "eos_token_id": self._stop_ids,
            "pad_token_id": self._pad_id,
            "use_cache": True,
        }
        if is_greedy(sampling):
            return GenerationConfig(do_sample=False, **common)
        return GenerationConfig(
            do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0, **common
        )

    @torch.inference_mode()
    def _generate_batch(
        self, batch: list[tuple[list[int], list[int], str]], sampling: SamplingConfig
    ) -> list[Completion]:
        width = max(len(base) + len(prefill) for base, prefill, _ in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (base, prefill, _) in enumerate(batch):
            ids = base + prefill
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        recorder = _SampledLogprobs()
        device = self.model.device
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else None, device_type=device.type):
            torch.manual_seed(self._rng.randrange(2**63))
            sequences = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=self._config(sampling),
                logits_processor=LogitsProcessorList([recorder]),
            )
        new = sequences[:, width:].cpu()
        logprobs = recorder.finish(new)
        stops = set(self._stop_ids)
        out = []
        for row, (_, prefill_ids, prefill_text) in enumerate(batch):
            tokens = new[row].tolist()
            end = next((i + 1 for i, t in enumerate(tokens) if t in stops), None)
            finish = "length" if end is None else "stop"
            tokens = tokens[:end]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            out.append(
                Completion(
                    text=prefill_text + text,
                    token_ids=tuple(prefill_ids + tokens),
                    logprobs=tuple(logprobs[row, : len(tokens)].tolist()),
                    finish_reason=finish,
                )
            )
        return out
