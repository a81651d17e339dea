"""HiPO rewards, bias, advantages and loss (docs/algorithm.md §3-§6): hand-computed cases and properties.

Notation in the comments: ω = 0.05, ε = 1e-6 (negligible at the tolerances used), σ is the population
std. Rewards come from §3: 1.2 = correct and well formed, 1.0 = correct, 0.2 = format only, 0 = neither.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hipo.train.algorithm import (
    MODE_NONE,
    MODE_OFF,
    MODE_ON,
    aggregate,
    bias_adjust,
    grpo_advantages,
    hipo_advantages,
    kl_k3,
    policy_loss,
    rewards,
    token_advantages,
    uniform_groups,
)

ON, OFF, NONE = MODE_ON, MODE_OFF, MODE_NONE
SQRT3 = math.sqrt(3.0)


def t(*rows):
    """A [B, G] float tensor from rows of numbers."""
    return torch.tensor(rows, dtype=torch.float32)


def m(*rows):
    """A [B, G] mode tensor from rows of mode codes."""
    return torch.tensor(rows, dtype=torch.long)


def close(actual, expected, atol=5e-5):
    """Element-wise |actual - expected| <= atol (ε = 1e-6 shifts a standardised value by up to ε/σ)."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert ((actual - expected).abs() <= atol).all(), f"\n{actual}\n!=\n{expected}"


# ---------------------------------------------------------------- §3 reward


def test_reward_is_accuracy_plus_weighted_format():
    correct = torch.tensor([[True, True, False, False]])
    fmt = torch.tensor([[True, False, True, False]])
    close(rewards(correct, fmt), [[1.2, 1.0, 0.2, 0.0]])
    close(rewards(correct.float(), fmt.float(), format_weight=0.5), [[1.5, 1.0, 0.5, 0.0]])
    assert rewards(correct, fmt).dtype == torch.get_default_dtype()


# ---------------------------------------------------------------- §4 bias adjustment


def test_relative_fires_on_a_tie():
    # R_on = 1.2, R_off = 1.2, gap 0 <= ω·R_on = 0.06 -> every off response gets +0.06.
    out = bias_adjust(t([1.2, 1.2, 1.2, 1.2]), m([ON, ON, OFF, OFF]))
    close(out, [[1.2, 1.2, 1.26, 1.26]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relative_fires_on_a_tie_of_means_with_rounding(dtype):
    # R_on = (1.2 + 0 + 0.2 + 1.2)/4 = 0.65 = R_off = (1.2 + 0.2 + 0.2 + 1.0)/4; in float64 the two
    # sums round apart (R_on - R_off = -1.1e-16). The rule says R_on >= R_off: off += 0.5 * 0.65.
    r = torch.tensor([[1.2, 0.0, 0.2, 1.2, 1.2, 0.2, 0.2, 1.0]], dtype=dtype)
    out = bias_adjust(r, m([ON] * 4 + [OFF] * 4), "relative", omega=0.5)
    expected = [[1.2, 0.0, 0.2, 1.2, 1.525, 0.525, 0.525, 1.325]]
    assert torch.allclose(out, torch.tensor(expected, dtype=dtype), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_absolute_fires_at_its_upper_boundary_with_rounding(dtype):
    # R_on = (0 + 0 + 1.0 + 1.2)/4 = 0.55, R_off = (0 + 0 + 1 + 1)/4 = 0.5: gap 0.05 = omega exactly,
    # computed as 0.05000000000000002 in float64. Off += 0.05 * 0.55 = 0.0275.
    r = torch.tensor([[0.0, 0.0, 1.0, 1.2, 0.0, 0.0, 1.0, 1.0]], dtype=dtype)
    out = bias_adjust(r, m([ON] * 4 + [OFF] * 4), "absolute", omega=0.05)
    expected = [[0.0, 0.0, 1.0, 1.2, 0.0275, 0.0275, 1.0275, 1.0275]]
    assert torch.allclose(out, torch.tensor(expected, dtype=dtype), atol=1e-6)
    beyond = torch.tensor([[0.0, 0.0, 1.0, 1.2, 0.0, 0.0, 1.0, 0.99]], dtype=dtype)  # gap 0.0525
    assert torch.equal(bias_adjust(beyond, m([ON] * 4 + [OFF] * 4), "absolute", omega=0.05), beyond)


def test_relative_fires_when_off_is_nearly_as_good():
    # R_on = 1.2, R_off = (1.2·3 + 1.0)/4 = 1.15, gap 0.05 <= ω·R_on = 0.06 -> off += 0.06.
    out = bias_adjust(t([1.2, 1.2, 1.2, 1.2, 1.0]), m([ON, OFF, OFF, OFF, OFF]))
    close(out, [[1.2, 1.26, 1.26, 1.26, 1.06]])


def test_relative_does_not_fire_when_gap_is_too_large():
    # R_on = 1.2, R_off = (1.2 + 0.2)/2 = 0.7, gap 0.5 > 0.06 -> unchanged.
    r = t([1.2, 1.2, 1.2, 0.2])
    close(bias_adjust(r, m([ON, ON, OFF, OFF])), r)


def test_relative_does_not_fire_when_off_is_better():
    # R_on = (1.2 + 0.2)/2 = 0.7 < R_off = 1.2 -> unchanged (off is already ahead).
    r = t([1.2, 0.2, 1.2, 1.2])
    close(bias_adjust(r, m([ON, ON, OFF, OFF])), r)


@pytest.mark.parametrize("variant", ["relative", "absolute", "always", "none"])
def test_no_bias_when_only_one_mode_occurs(variant):
    r = t([1.2, 1.2, 0.2, 0.2], [1.2, 1.2, 1.2, 1.2])
    modes = m([OFF, OFF, OFF, OFF], [ON, ON, ON, NONE])
    close(bias_adjust(r, modes, variant), r)


def test_absolute_uses_a_fixed_threshold():
    # R_on = 0.2, R_off = (0.2·4 + 0)/5 = 0.16, gap 0.04.
    # absolute: 0.04 <= ω = 0.05 -> off += ω·R_on = 0.01; relative: 0.04 > ω·R_on = 0.01 -> unchanged.
    r = t([0.2, 0.2, 0.2, 0.2, 0.2, 0.0])
    modes = m([ON, OFF, OFF, OFF, OFF, OFF])
    close(bias_adjust(r, modes, "absolute"), [[0.2, 0.21, 0.21, 0.21, 0.21, 0.01]])
    close(bias_adjust(r, modes, "relative"), r)
    # gap 0.5 > 0.05 -> unchanged; R_off > R_on -> unchanged.
    close(bias_adjust(t([1.2, 1.2, 1.2, 0.2]), m([ON, ON, OFF, OFF]), "absolute"), [[1.2, 1.2, 1.2, 0.2]])
    close(bias_adjust(t([1.2, 0.2, 1.2, 1.2]), m([ON, ON, OFF, OFF]), "absolute"), [[1.2, 0.2, 1.2, 1.2]])


def test_always_adds_the_bonus_whenever_both_modes_occur():
    # R_on = (1.2 + 0.2)/2 = 0.7 (worse than R_off = 1.2, still biased): off += ω·0.7 = 0.035.
    out = bias_adjust(t([1.2, 0.2, 1.2, 1.2]), m([ON, ON, OFF, OFF]), "always")
    close(out, [[1.2, 0.2, 1.235, 1.235]])
    # R_on = 1.2, R_off = 0.7, gap 0.5: still off += 0.06.
    out = bias_adjust(t([1.2, 1.2, 1.2, 0.2]), m([ON, ON, OFF, OFF]), "always")
    close(out, [[1.2, 1.2, 1.26, 0.26]])


def test_none_leaves_rewards_unchanged():
    r = t([1.2, 1.2, 1.2, 1.2])
    close(bias_adjust(r, m([ON, ON, OFF, OFF]), "none"), r)


def test_no_mode_tag_never_gets_the_bonus_nor_counts_in_the_means():
    # R_on = 1.2, R_off = 1.2 (the untagged 0.0 is in neither mean) -> off += 0.06, untagged stays 0.
    out = bias_adjust(t([1.2, 1.2, 0.0, 1.2]), m([ON, OFF, NONE, OFF]))
    close(out, [[1.2, 1.26, 0.0, 1.26]])


def test_bias_is_per_group_in_a_batch():
    r = t([1.2, 1.2, 1.2, 1.2], [1.2, 1.2, 1.2, 0.2])
    out = bias_adjust(r, m([ON, ON, OFF, OFF], [ON, ON, OFF, OFF]))
    close(out, [[1.2, 1.2, 1.26, 1.26], [1.2, 1.2, 1.2, 0.2]])


def test_unknown_bias_variant_is_rejected():
    with pytest.raises(ValueError):
        bias_adjust(t([1.0]), m([ON]), "sometimes")


# ---------------------------------------------------------------- §5 advantages

# Group used below: modes on,on,off,off rewards 1.2,0.2,1.2,1.2.
# μ_all = 3.8/4 = 0.95, deviations .25,-.75,.25,.25, σ_all = sqrt(0.75/4) = sqrt(0.1875) = 0.4330127
# GRPO: .25/σ_all = 1/√3 = 0.5773503, -.75/σ_all = -√3 = -1.7320508
# μ_on = 0.7, σ_on = 0.5 -> answer ±1; μ_off = 1.2, σ_off = 0 -> answer 0
# judge on: (0.7-0.95)/σ_all = -1/√3; judge off: (1.2-0.95)/σ_all = +1/√3
MIXED_R, MIXED_M = t([1.2, 0.2, 1.2, 1.2]), m([ON, ON, OFF, OFF])
MIXED_GRPO = [[1 / SQRT3, -SQRT3, 1 / SQRT3, 1 / SQRT3]]


def test_grpo_advantages_by_hand():
    close(grpo_advantages(MIXED_R), MIXED_GRPO)


def test_hipo_mixed_modes():
    judge, answer = hipo_advantages(MIXED_R, MIXED_M)
    close(judge, [[-1 / SQRT3, -1 / SQRT3, 1 / SQRT3, 1 / SQRT3]])
    close(answer, [[1.0, -1.0, 0.0, 0.0]])


def test_hipo_single_sample_mode_has_zero_answer_advantage():
    # on: [1.2] -> σ_on = 0, answer 0. off: 1.2,1.2,0.2, μ_off = 2.6/3, deviations 1/3,1/3,-2/3,
    # σ_off = sqrt((1/9+1/9+4/9)/3) = 0.4714045 -> answer 1/√2, 1/√2, -√2.
    # μ_all = 0.95, σ_all = 0.4330127: judge on = 0.25/σ_all = 1/√3, off = (2.6/3-0.95)/σ_all = -0.1924501.
    judge, answer = hipo_advantages(t([1.2, 1.2, 1.2, 0.2]), m([ON, OFF, OFF, OFF]))
    close(answer, [[0.0, 1 / math.sqrt(2), 1 / math.sqrt(2), -math.sqrt(2)]])
    close(judge, [[1 / SQRT3, -0.1924501, -0.1924501, -0.1924501]])


def test_hipo_one_mode_only_is_plain_grpo():
    for mode in (ON, OFF):
        judge, answer = hipo_advantages(MIXED_R, m([mode] * 4))
        assert torch.equal(judge, torch.zeros_like(judge))
        close(answer, MIXED_GRPO)


def test_hipo_equal_rewards_in_a_mode_give_zero_answer_advantage():
    # on: 1.0,1.0 -> answer 0. off: 0.2,0.0, μ_off = 0.1, σ_off = 0.1 -> answer ±1.
    # μ_all = 0.55, σ_all = sqrt((.45²+.45²+.35²+.55²)/4) = sqrt(0.2075) = 0.4555217
    # judge on: 0.45/σ_all = 0.9878783, off: -0.45/σ_all = -0.9878783
    judge, answer = hipo_advantages(t([1.0, 1.0, 0.2, 0.0]), m([ON, ON, OFF, OFF]))
    assert answer[0, 0] == 0 and answer[0, 1] == 0
    close(answer, [[0.0, 0.0, 1.0, -1.0]])
    close(judge, [[0.9878783, 0.9878783, -0.9878783, -0.9878783]])


def test_uniform_group_is_exactly_zero():
    r = t([1.2, 1.2, 1.2, 1.2, 1.2], [0.2, 0.2, 0.2, 0.2, 0.2])
    modes = m([ON, OFF, OFF, NONE, ON], [OFF, OFF, OFF, ON, ON])
    judge, answer = hipo_advantages(r, modes)
    assert not judge.any() and not answer.any() and not grpo_advantages(r).any()
    assert uniform_groups(r).tolist() == [True, True]


def test_no_mode_tag_gets_grpo_for_judge_and_answer():
    # modes on,on,off,none rewards 1.2,0.2,1.2,0.0: μ_all = 0.65, deviations .55,-.45,.55,-.65,
    # σ_all = sqrt(1.23/4) = 0.5545268. untagged: -0.65/σ_all = -1.1721705 for both.
    # on: μ_on 0.7, σ_on 0.5 -> answer ±1, judge 0.05/σ_all = 0.0901670;
    # off: single sample -> answer 0, judge 0.55/σ_all = 0.9918366.
    judge, answer = hipo_advantages(t([1.2, 0.2, 1.2, 0.0]), m([ON, ON, OFF, NONE]))
    close(answer, [[1.0, -1.0, 0.0, -1.1721705]])
    close(judge, [[0.0901670, 0.0901670, 0.9918366, -1.1721705]])
    close(judge.sum(-1), [0.0])


def test_hipo_switches():
    judge, answer = hipo_advantages(MIXED_R, MIXED_M, local_norm=False)
    close(answer, MIXED_GRPO)
    close(judge, [[-1 / SQRT3, -1 / SQRT3, 1 / SQRT3, 1 / SQRT3]])
    judge, answer = hipo_advantages(MIXED_R, MIXED_M, global_mode_adv=False)
    close(judge, MIXED_GRPO)
    close(answer, [[1.0, -1.0, 0.0, 0.0]])
    judge, answer = hipo_advantages(MIXED_R, MIXED_M, gamma=0.5)
    close(judge, [[-0.5 / SQRT3, -0.5 / SQRT3, 0.5 / SQRT3, 0.5 / SQRT3]])
    close(answer, [[1.0, -1.0, 0.0, 0.0]])


def test_judge_std_floor_by_hand():
    # A tie after the §4 bonus: on 1.2,1.2 and off 1.26,1.26. μ_all = 1.23, σ_all = 0.03.
    # Unfloored the judge advantage is ∓0.03/0.03 = ∓1; a floor of 0.2 gives ∓0.03/0.2 = ∓0.15;
    # a floor below σ_all (0.01) changes nothing. Answer advantages are 0 (σ_m = 0) in every case.
    r, modes = t([1.2, 1.2, 1.26, 1.26]), m([ON, ON, OFF, OFF])
    for floor, size in ((0.0, 1.0), (0.01, 1.0), (0.2, 0.15)):
        judge, answer = hipo_advantages(r, modes, judge_std_floor=floor)
        close(judge, [[-size, -size, size, size]], atol=1e-4)
        assert not answer.any()
    # untagged responses keep the plain GRPO advantage, unfloored
    judge, _ = hipo_advantages(t([1.2, 1.26, 1.2]), m([ON, OFF, NONE]), judge_std_floor=0.2)
    close(judge[0, 2], grpo_advantages(t([1.2, 1.26, 1.2]))[0, 2])


def test_batch_equals_groups_one_at_a_time():
    r = t([1.2, 0.2, 1.2, 1.2], [1.2, 1.2, 1.2, 0.2], [1.0, 1.0, 0.2, 0.0], [1.2, 0.2, 1.2, 0.0])
    modes = m([ON, ON, OFF, OFF], [ON, OFF, OFF, OFF], [ON, ON, ON, ON], [ON, NONE, OFF, NONE])
    judge, answer = hipo_advantages(r, modes)
    biased = bias_adjust(r, modes)
    grpo = grpo_advantages(r)
    for b in range(r.shape[0]):
        j1, a1 = hipo_advantages(r[b : b + 1], modes[b : b + 1])
        close(judge[b : b + 1], j1, atol=1e-6)
        close(answer[b : b + 1], a1, atol=1e-6)
        close(grpo[b : b + 1], grpo_advantages(r[b : b + 1]), atol=1e-6)
        close(biased[b : b + 1], bias_adjust(r[b : b + 1], modes[b : b + 1]), atol=1e-6)


def test_token_advantages():
    judge = t([2.0, -1.0])
    answer = t([0.5, 3.0])
    mask = torch.tensor([[[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]])
    out = token_advantages(judge, answer, torch.tensor([[2, 0]]), mask)
    close(out, [[[2.0, 2.0, 0.5, 0.5, 0.0], [3.0, 3.0, 3.0, 0.0, 0.0]]])
    # judge_len past the last valid token: every valid token gets the judge advantage, padding stays 0.
    out = token_advantages(judge, answer, torch.tensor([[7, 3]]), mask.bool())
    close(out, [[[2.0, 2.0, 2.0, 2.0, 0.0], [-1.0, -1.0, -1.0, 0.0, 0.0]]])


# ---------------------------------------------------------------- §6 loss

AGG_VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 9.0, 9.0, 9.0]])
AGG_MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    ("agg", "norm_len", "expected"),
    [
        ("token_mean", None, 3.5),  # (1+2+3+4 + 5+6) / 6 tokens
        ("seq_mean_token_mean", None, 4.0),  # (10/4 + 11/2) / 2 non-empty sequences
        ("seq_mean_token_sum_norm", None, 1.75),  # (10/4 + 11/4 + 0/4) / 3 sequences
        ("seq_mean_token_sum_norm", 2, 3.5),  # (10/2 + 11/2 + 0/2) / 3 sequences
    ],
)
def test_aggregate_by_hand(agg, norm_len, expected):
    close(aggregate(AGG_VALUES, AGG_MASK, agg, norm_len), expected)
    # same numbers as [B, G, T]
    close(aggregate(AGG_VALUES.reshape(3, 1, 4), AGG_MASK.reshape(3, 1, 4), agg, norm_len), expected)


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_aggregate_empty_mask_is_zero(agg):
    out = aggregate(AGG_VALUES, torch.zeros_like(AGG_MASK), agg)
    assert out.item() == 0.0
    with pytest.raises(ValueError):
        aggregate(AGG_VALUES, AGG_MASK, "sum")


def test_policy_loss_at_ratio_one_is_minus_mean_advantage():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -9.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss, stats = policy_loss(logp, logp.detach(), adv, mask)
    close(loss, -(1 + 2 + 3 - 1 + 0) / 5)
    close(stats["pg_loss"], -1.0)
    assert stats["clip_frac"].item() == 0.0 and stats["kl"].item() == 0.0
    close(stats["ratio_mean"], 1.0)
    loss.backward()
    close(logp.grad, [[-0.2, -0.4, -0.6], [0.2, 0.0, 0.0]])  # d/dρ of -ρA/5 at ρ = 1


def test_policy_loss_clipping_binds():
    # ρ, A -> -ρA vs -clip(ρ, 0.8, 1.28)·A, the larger is taken:
    # 1.5, +1 -> -1.5 vs -1.28 -> -1.28 (clipped)   0.5, -1 -> 0.5 vs 0.8 -> 0.8 (clipped)
    # 1.1, +1 -> -1.1 vs -1.1 -> -1.1               0.5, +1 -> -0.5 vs -0.8 -> -0.5
    # 1.5, -1 -> 1.5 vs 1.28 -> 1.5
    # loss = (-1.28 + 0.8 - 1.1 - 0.5 + 1.5)/5 = -0.116; clip_frac 2/5; ratio mean 5.1/5 = 1.02
    ratio = torch.tensor([[1.5, 0.5, 1.1, 0.5, 1.5]])
    adv = torch.tensor([[1.0, -1.0, 1.0, 1.0, -1.0]])
    old = torch.full_like(ratio, -1.0)
    logp = (old + ratio.log()).requires_grad_(True)
    loss, stats = policy_loss(logp, old, adv, torch.ones_like(ratio))
    close(loss, -0.116)
    close(stats["clip_frac"], 0.4)
    close(stats["ratio_mean"], 1.02)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] == 0  # clipped tokens carry no gradient
    close(logp.grad, [[0.0, 0.0, -1.1 / 5, -0.5 / 5, 1.5 / 5]])


def test_kl_k3():
    logp = torch.tensor([-1.0, -2.0, -3.0])
    assert torch.equal(kl_k3(logp, logp), torch.zeros(3))
    # d = ref - logp: d = 1 -> e - 1 - 1 = 0.7182818; d = -1 -> e^-1 + 1 - 1 = 0.3678794
    close(kl_k3(logp, logp + torch.tensor([1.0, -1.0, 0.0])), [math.e - 2, math.exp(-1), 0.0])
    assert (kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()
    assert torch.isfinite(kl_k3(torch.tensor([-1000.0]), torch.tensor([0.0]))).all()


def test_kl_beta_adds_to_the_loss():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    ref = logp + torch.tensor([[1.0, -1.0], [0.0, 0.0]])  # k3 = e-2, e^-1, 0, 0 -> mean (e-2+e^-1)/4
    adv = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    mask = torch.ones_like(logp)
    kl = (math.e - 2 + math.exp(-1)) / 4
    base, stats0 = policy_loss(logp, logp, adv, mask, ref_logp=ref)
    close(base, -1.0)  # kl_beta 0: reported, not added
    close(stats0["kl"], kl)
    loss, stats = policy_loss(logp, logp, adv, mask, ref_logp=ref, kl_beta=0.1)
    close(loss, -1.0 + 0.1 * kl)
    close(stats["pg_loss"], -1.0)
    close(stats["kl"], kl)


def test_policy_loss_ignores_garbage_in_padding():
    logp = torch.tensor([[-1.0, float("-inf"), float("nan")]], requires_grad=True)
    old = torch.tensor([[-1.0, 0.0, float("nan")]])
    adv = torch.tensor([[2.0, float("inf"), 1.0]])
    mask = torch.tensor([[True, False, False]])
    loss, stats = policy_loss(logp, old, adv, mask, ref_logp=old, kl_beta=0.1)
    close(loss, -2.0)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert all(torch.isfinite(v) for v in stats.values())


def test_uniform_groups():
    r = t([1.2, 1.2, 1.2], [1.2, 0.2, 1.2], [0.0, 0.0, 0.0])
    assert uniform_groups(r).tolist() == [True, False, True]


# ---------------------------------------------------------------- properties

FLOATS = st.floats(-1e6, 1e6, width=32)
REWARDS = st.sampled_from([0.0, 0.2, 1.0, 1.2]) | st.floats(0.0, 1.25, width=32)
ANY_FLOAT32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def groups(draw, elem=FLOATS):
    """(rewards [B, G] float32, modes [B, G]) with B in 1..4, G in 1..8."""
    b = draw(st.integers(1, 4))
    g = draw(st.integers(1, 8))
    r = draw(st.lists(elem, min_size=b * g, max_size=b * g))
    modes = draw(st.lists(st.sampled_from([ON, OFF, NONE]), min_size=b * g, max_size=b * g))
    return torch.tensor(r, dtype=torch.float32).reshape(b, g), torch.tensor(modes).reshape(b, g)


PROP = settings(max_examples=200, deadline=None)


@PROP
@given(groups(), st.booleans(), st.booleans(), st.floats(0.0, 2.0))
def test_outputs_are_always_finite(group, local_norm, global_mode_adv, gamma):
    r, modes = group
    for variant in ("relative", "absolute", "always", "none"):
        assert torch.isfinite(bias_adjust(r, modes, variant)).all()
    assert torch.isfinite(grpo_advantages(r)).all()
    judge, answer = hipo_advantages(r, modes, gamma, local_norm, global_mode_adv)
    assert torch.isfinite(judge).all() and torch.isfinite(answer).all()
    judge_len = torch.randint(0, 6, r.shape)
    mask = torch.rand(*r.shape, 5) > 0.3
    tok = token_advantages(judge, answer, judge_len, mask)
    assert torch.isfinite(tok).all() and not tok[~mask].any()


@PROP
@given(groups(ANY_FLOAT32))
def test_advantages_are_finite_for_any_float32_rewards(group):
    r, modes = group
    judge, answer = hipo_advantages(r, modes)
    assert torch.isfinite(judge).all() and torch.isfinite(answer).all()
    assert torch.isfinite(grpo_advantages(r)).all()


@PROP
@given(groups(REWARDS))
def test_advantage_sums(group):
    r, modes = group
    r = bias_adjust(r, modes)
    close(grpo_advantages(r).sum(-1), torch.zeros(r.shape[0]), atol=1e-4)
    judge, answer = hipo_advantages(r, modes)
    close(judge.sum(-1), torch.zeros(r.shape[0]), atol=1e-4)  # Σ_m n_m (μ_m - μ_all) = 0
    for mode in (ON, OFF):
        seg = (answer * (modes == mode)).sum(-1)
        close(seg, torch.zeros(r.shape[0]), atol=1e-4)


@PROP
@given(groups(REWARDS))
def test_one_mode_groups_reduce_to_grpo(group):
    r, _ = group
    for mode in (ON, OFF):
        judge, answer = hipo_advantages(r, torch.full_like(r, mode, dtype=torch.long))
        assert not judge.any()
        close(answer, grpo_advantages(r), atol=1e-6)


@PROP
@given(groups(REWARDS), st.sampled_from(["relative", "absolute", "always", "none"]), st.floats(0, 1))
def test_bias_never_lowers_rewards_nor_touches_think_on(group, variant, omega):
    r, modes = group
    out = bias_adjust(r, modes, variant, omega)
    assert (out >= r).all()
    untouched = modes != OFF
    assert torch.equal(out[untouched], r[untouched])


@PROP
@given(groups(REWARDS))
def test_batch_matches_single_groups(group):
    r, modes = group
    judge, answer = hipo_advantages(r, modes)
    for b in range(r.shape[0]):
        j1, a1 = hipo_advantages(r[b : b + 1], modes[b : b + 1])
        assert torch.equal(judge[b : b + 1], j1) and torch.equal(answer[b : b + 1], a1)


@PROP
@given(groups(REWARDS), st.floats(0.0, 1.0))
def test_judge_std_floor_only_shrinks_the_judge_advantage(group, floor):
    r, modes = group
    judge, answer = hipo_advantages(r, modes)
    floored, floored_answer = hipo_advantages(r, modes, judge_std_floor=floor)
    assert torch.equal(answer, floored_answer)
    assert (floored.abs() <= judge.abs() + 1e-6).all()
    assert (torch.sign(floored) * torch.sign(judge) >= 0).all()
    tagged = (modes != NONE).all(-1)  # untagged responses keep the unfloored GRPO advantage
    close(floored.sum(-1)[tagged], torch.zeros(int(tagged.sum())), atol=1e-4)
    zero, _ = hipo_advantages(r, modes, judge_std_floor=0.0)
    assert torch.equal(zero, judge)
