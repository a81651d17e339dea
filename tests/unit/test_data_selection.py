"""Mode choice from verified samples (docs/algorithm.md §2 steps 2–5), by hand."""

import pytest

from hipo.config import DataConfig
from hipo.data.selection import Sample, bucket, choose, preferred_mode, query_rng, shortest_correct

NO_RANDOM = DataConfig(random_mode_rate=0.0)


def samples(correct_lengths, wrong=0, wrong_len=1):
    """Correct samples with the given token counts, plus `wrong` incorrect ones."""
    return [Sample(f"c{n}", True, n) for n in correct_lengths] + [Sample("w", False, wrong_len)] * wrong


@pytest.mark.parametrize(
    ("p_on", "p_off", "expected"),
    [
        (1.0, 1.0, "off"),  # tie → think-off
        (1.0, 0.875, "off"),  # 8/8 vs 7/8: a gap of one in eight (= δ) is a near tie
        (1.0, 0.75, "on"),  # two in eight: think-on wins
        (0.875, 0.875, "off"),
        (0.75, 0.5, "on"),
        (0.75, 0.75 - 0.124, "off"),  # gap below δ
        (0.5, 0.875, "off"),  # think-off better
        (0.0, 0.0, "off"),
    ],
)
def test_preferred_mode_tie_break_toward_off(p_on, p_off, expected):
    assert preferred_mode(p_on, p_off, 0.125) == expected


def test_bucket_edges():
    c = DataConfig()
    assert [bucket(p, c) for p in (1.0, 0.75, 0.625, 0.25, 0.125, 0.0)] == [
        "easy",
        "easy",
        "medium",
        "medium",
        "hard",
        "hard",
    ]


def test_shortest_correct_ignores_wrong_and_keeps_first_of_equals():
    assert shortest_correct(samples([9, 4, 4], wrong=2, wrong_len=1)).text == "c4"
    assert shortest_correct(samples([], wrong=3)) is None


def test_choose_prefers_off_on_near_tie_and_keeps_its_shortest():
    # on: 8/8, off: 6/8 → gap 2/8 > δ → on. on 8/8, off 8/8 → off.
    c = choose("q", samples([30] * 8), samples([5] * 6, wrong=2), NO_RANDOM)
    assert (c.mode, c.preferred, c.p_on, c.p_off, c.bucket) == ("on", "on", 1.0, 0.75, "easy")
    c = choose("q", samples([30] * 8), samples([5] * 7, wrong=1), NO_RANDOM)
    assert (c.mode, c.preferred, c.sample.num_tokens) == ("off", "off", 5)
    c = choose("q", samples([30] * 8), samples([5, 3, 5, 5, 5, 5, 5, 5]), NO_RANDOM)
    assert (c.mode, c.sample.num_tokens, c.random_mode) == ("off", 3, False)


def test_choose_hard_query_goes_on_and_drops_when_nothing_is_correct():
    c = choose("q", samples([40, 35], wrong=6), samples([], wrong=8), NO_RANDOM)
    assert (c.mode, c.sample.num_tokens, c.bucket, c.p_on, c.p_off) == ("on", 35, "hard", 0.25, 0.0)
    assert choose("q", samples([], wrong=8), samples([], wrong=8), NO_RANDOM) is None


def test_preferred_mode_without_a_correct_response_falls_back_to_the_other():
    # δ = 0.25; p_on = 1/8, p_off = 0: a near tie prefers off, but off has nothing correct → keep on
    config = DataConfig(random_mode_rate=0.0, delta=0.25)
    c = choose("q", samples([12], wrong=7), samples([], wrong=8), config)
    assert (c.mode, c.preferred) == ("on", "off")


def test_random_mode_rate_is_seeded_per_query_and_near_its_rate():
    config = DataConfig(random_mode_rate=0.1, seed=3)
    on, off = samples([30] * 8), samples([5] * 8)  # preferred off; both modes available
    picks = [choose(f"q{i}", on, off, config) for i in range(4000)]
    randomised = [c for c in picks if c.random_mode]
    assert 300 < len(randomised) < 500  # 10% of 4000, about half of which also draw "off"
    assert {c.mode for c in randomised} == {"on", "off"}
    assert all(c.preferred == "off" for c in picks)
    again = [choose(f"q{i}", on, off, config) for i in range(4000)]
    assert picks == again
    assert query_rng(3, "q1").random() != query_rng(4, "q1").random()


def test_random_mode_keeps_preferred_when_drawn_mode_has_no_correct_response():
    config = DataConfig(random_mode_rate=1.0)
    picks = [choose(f"q{i}", samples([], wrong=8), samples([5] * 8), config) for i in range(50)]
    assert all(c.mode == "off" for c in picks)
    assert any(not c.random_mode for c in picks) and any(c.random_mode for c in picks)
