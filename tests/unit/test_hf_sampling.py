"""The hf engine's token draw (hipo.engines.hf.next_tokens): the exponential race samples the
temperature- and top-p-shaped distribution, greedy is the argmax."""

import pytest
import torch

from hipo.config import SamplingConfig
from hipo.engines.hf import next_tokens

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
DRAWS = 40_000


def _frequencies(sampling: SamplingConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    tokens = next_tokens(LOGITS.expand(DRAWS, -1), sampling, generator)
    return torch.bincount(tokens, minlength=LOGITS.numel()).double() / DRAWS


def _target(temperature: float, top_p: float) -> torch.Tensor:
    """Softmax at ``temperature`` restricted to the most likely tokens whose mass first reaches top_p."""
    probs = torch.softmax(LOGITS.double() / temperature, -1)
    kept, mass = torch.zeros_like(probs, dtype=torch.bool), 0.0
    for index in probs.argsort(descending=True).tolist():
        if mass >= top_p:
            break
        kept[index], mass = True, mass + float(probs[index])
    return torch.where(kept, probs, 0.0) / probs[kept].sum()


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.6, 1.0), (1.0, 0.8), (0.7, 0.95)])
def test_draws_follow_the_shaped_distribution(temperature, top_p):
    target = _target(temperature, top_p)
    got = _frequencies(SamplingConfig(temperature=temperature, top_p=top_p))
    # 4 standard errors of a frequency over 40,000 draws
    bound = 4 * (target * (1 - target) / DRAWS).sqrt() + 1e-9
    assert ((got - target).abs() <= bound).all(), (got, target)
    assert (got[target == 0] == 0).all()  # nothing outside the top-p set


def test_greedy_and_zero_temperature_take_the_argmax():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(1))
    for sampling in (SamplingConfig(greedy=True), SamplingConfig(temperature=0.0)):
        assert torch.equal(next_tokens(logits, sampling, torch.Generator()), logits.argmax(-1))


def test_the_same_generator_seed_gives_the_same_draws():
    logits = torch.randn(7, 50, generator=torch.Generator().manual_seed(2))
    draw = [next_tokens(logits, SamplingConfig(), torch.Generator().manual_seed(s)) for s in (3, 3, 4)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
