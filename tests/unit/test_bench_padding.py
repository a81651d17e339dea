"""bench/sft_padding.py: what a step computes under each micro-batch layout, on hand-computed cases."""

import random

from bench.sft_padding import measure, sharded_then_sorted, sorted_then_dealt, step_cost

LENGTHS = [10, 20, 30, 40]


def test_trainer_layout_shards_then_sorts_and_the_slowest_rank_sets_the_cost():
    layout = sharded_then_sorted([3, 2, 1, 0], LENGTHS, world=2, micro=1)
    assert layout == [[[1], [3]], [[0], [2]]]  # rank 0 takes rows 3 and 1, rank 1 rows 2 and 0
    assert step_cost(layout, LENGTHS) == 2 * (20 + 40)


def test_sorted_then_dealt_snakes_so_the_ranks_share_the_long_rows():
    layout = sorted_then_dealt([3, 2, 1, 0], LENGTHS, world=2, micro=1)
    assert layout == [[[0], [3]], [[1], [2]]]
    assert step_cost(layout, LENGTHS) == 2 * 50


def test_padding_counts_each_micro_batch_at_its_longest_row():
    layout = sharded_then_sorted([0, 1, 2, 3], LENGTHS, world=1, micro=2)
    assert step_cost(layout, LENGTHS) == 2 * 20 + 2 * 40


def test_both_layouts_hold_every_row_once():
    rng = random.Random(0)
    lengths = [rng.randint(5, 90) for _ in range(64)]
    rows = rng.sample(range(64), 64)
    for layout in (sharded_then_sorted, sorted_then_dealt):
        parts = layout(rows, lengths, 2, 16)
        assert sorted(i for rank in parts for part in rank for i in part) == sorted(rows)
        assert [len(rank) for rank in parts] == [2, 2]


def test_measure_counts_padding_and_on_one_rank_the_layouts_agree():
    rng = random.Random(1)
    lengths = [rng.choice([15, 80]) for _ in range(100)]
    levels = [i % 5 for i in range(100)]
    two = measure(lengths, levels, batch=32, world=2, micro=16, steps=5)
    one = measure(lengths, levels, batch=32, world=1, micro=16, steps=5)
    assert two["tokens"] == one["tokens"] > 0
    assert min(two["trainer_cost_per_token"], two["sorted_then_dealt_cost_per_token"]) >= 1.0
    assert one["trainer_cost_per_token"] == one["sorted_then_dealt_cost_per_token"] >= 1.0
