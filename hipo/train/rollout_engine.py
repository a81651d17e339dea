"""Rollout engines of the RL loop: "hf" generates with the live model, "vllm" with an in-process vLLM
that receives the policy's weights after every update.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from hipo.config import RLConfig, SamplingConfig
from hipo.engines import registry
from hipo.engines.base import Completion
from hipo.models.policy import Policy, save_policy
from hipo.train.optim import Updater

GENERATE_BATCH = 256  # rollouts per generate call of the hf engine


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]: ...

    def sync(self) -> None:
        """Make the engine sample from the policy's current weights."""


class HFRollouts:
    """A fresh HFEngine per call on the live model, seeded per call: a resumed run samples the same.
    Under ZeRO-3 the weights are gathered once per call, not in every layer for every token."""

    def __init__(self, policy: Policy, updater: Updater) -> None:
        self.policy = policy
        self.updater = updater

    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]:
        from hipo.engines.hf import HFEngine

        with self.updater.generation_model() as model:
            tokenizer, device = self.policy.tokenizer, str(model.device)
            engine = HFEngine(model, tokenizer, GENERATE_BATCH, device, seed=seed, logprobs=False)
            return engine.generate(prompts, n, sampling)

    def sync(self) -> None:
        """Nothing to do: generation uses the trained model itself."""


class VLLMRollouts:
    """vLLM in process, started from a copy of the policy in ``work_dir``. Its sampling seeds come from
    its own stream (``seed`` at start), so a resumed run does not repeat the interrupted run's samples.

    On a GPU the engine sleeps (weights offloaded, KV cache freed) while the trainer updates, and wakes
    before the weight push, so policy and engine share the device memory. vLLM has no sleep mode on CPU.
    """

    def __init__(
        self, policy: Policy, updater: Updater, work_dir: Path, seed: int, gpu_memory: float
    ) -> None:
        from hipo.engines.vllm_engine import VLLMEngine

        self.policy = policy
        self.updater = updater
        self.colocated = policy.model.device.type == "cuda"
        self.asleep = False
        gpu = {"gpu_memory_utilization": gpu_memory, "enable_sleep_mode": True} if self.colocated else {}
        with updater.full_parameters():
            start = save_policy(policy, work_dir)
        self.engine = VLLMEngine(start, seed=seed, enforce_eager=True, **gpu)

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
        with self.updater.full_parameters():
            self.engine.load_weights(self.policy.model.state_dict().items())

    def _wake(self) -> None:
        if self.asleep:
            self.engine.llm.wake_up()
            self.asleep = False


def hf_rollouts(rl: RLConfig, policy: Policy, updater: Updater, work_dir: Path, seed: int) -> RolloutEngine:
    return HFRollouts(policy, updater)


def vllm_rollouts(rl: RLConfig, policy: Policy, updater: Updater, work_dir: Path, seed: int) -> RolloutEngine:
    return VLLMRollouts(policy, updater, work_dir, seed, rl.vllm_gpu_memory_utilization)


def make(rl: RLConfig, policy: Policy, updater: Updater, work_dir: Path, seed: int) -> RolloutEngine:
    """The rollout engine ``rl.rollout_engine`` names in hipo/engines/registry.py."""
    return registry.factory(rl.rollout_engine, "rollouts")(rl, policy, updater, work_dir, seed)
