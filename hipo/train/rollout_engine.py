"""Rollout engines of the RL loop: "hf" generates with the live model, "vllm" with an in-process vLLM
that receives the policy's weights after every update.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from hipo.config import SamplingConfig
from hipo.engines.base import Completion
from hipo.train.models import Policy, save_policy

GENERATE_BATCH = 256  # rollouts per generate call of the hf engine
VLLM_GPU_MEMORY = 0.3  # share of the GPU vLLM may take; the trainer needs the rest


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]: ...

    def sync(self) -> None:
        """Make the engine sample from the policy's current weights."""


class HFRollouts:
    """A fresh HFEngine per call on the live model, seeded per call: a resumed run samples the same."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]:
        from hipo.engines.hf import HFEngine

        model = self.policy.model
        engine = HFEngine(model, self.policy.tokenizer, GENERATE_BATCH, str(model.device), seed=seed)
        return engine.generate(prompts, n, sampling)

    def sync(self) -> None:
        """Nothing to do: generation uses the trained model itself."""


class VLLMRollouts:
    """vLLM in process, started from a copy of the policy in ``work_dir``. Its sampling seeds come from
    its own stream (``seed`` at start), so a resumed run does not repeat the interrupted run's samples.

    On a GPU the engine sleeps (weights offloaded, KV cache freed) while the trainer updates, and wakes
    before the weight push, so policy and engine share the device memory. vLLM has no sleep mode on CPU.
    """

    def __init__(self, policy: Policy, work_dir: Path, seed: int) -> None:
        from hipo.engines.vllm_engine import VLLMEngine

        self.policy = policy
        self.colocated = policy.model.device.type == "cuda"
        self.asleep = False
        gpu = {"gpu_memory_utilization": VLLM_GPU_MEMORY, "enable_sleep_mode": True} if self.colocated else {}
        self.engine = VLLMEngine(save_policy(policy, work_dir), seed=seed, enforce_eager=True, **gpu)

    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]:
        self._wake()
        completions = self.engine.generate(prompts, n, sampling)
        if self.colocated:
            self.engine.llm.sleep(level=1)
            self.asleep = True
        return completions

    def sync(self) -> None:
        self._wake()
        self.engine.load_weights(self.policy.model.state_dict().items())

    def _wake(self) -> None:
        if self.asleep:
            self.engine.llm.wake_up()
            self.asleep = False


def make(kind: str, policy: Policy, work_dir: Path, seed: int) -> RolloutEngine:
    if kind == "vllm":
        return VLLMRollouts(policy, work_dir, seed)
    return HFRollouts(policy)
