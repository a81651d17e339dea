"""The arithmetic ladder (docs/results.md): generation, splits, traces, verifier, scripted teacher."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipo import template
from hipo.tasks import Problem, Task, TaskError, get_task
from hipo.tasks.arithmetic import (
    LEVELS,
    ArithmeticTask,
    add_columns,
    make_problem,
    operands_of,
    split_of,
    trace,
    trace_answer,
)
from hipo.tasks.teacher import DEFAULT_ERROR_RATES, ScriptedTeacher

TASK = ArithmeticTask()


def test_registry_builds_the_task():
    task = get_task("arithmetic", difficulties=[1, 2])
    assert isinstance(task, Task) and task.name == "arithmetic"
    with pytest.raises(TaskError, match="unknown task"):
        get_task("chess")
    with pytest.raises(TaskError, match="bad options"):
        get_task("arithmetic", level=3)


def test_problems_are_deterministic_by_split_and_seed():
    assert TASK.problems("train", 300, seed=7) == TASK.problems("train", 300, seed=7)
    assert TASK.problems("train", 300, seed=7) != TASK.problems("train", 300, seed=8)
    assert TASK.problems("eval", 50, 0) == TASK.problems("test", 50, 0)  # "test" is an alias


def test_train_and_eval_never_share_a_prompt_or_its_commuted_twin():
    train = [p for seed in (0, 1) for p in TASK.problems("train", 4000, seed)]
    evals = [p for seed in (0, 1) for p in TASK.problems("eval", 1500, seed)]
    key = lambda p: tuple(sorted(operands_of(p.prompt)))  # noqa: E731
    assert not {key(p) for p in train} & {key(p) for p in evals}
    assert all(split_of(operands_of(p.prompt)) == "train" for p in train)
    assert all(split_of(operands_of(p.prompt)) == "test" for p in evals)


def test_levels_digits_ids_and_stratification():
    problems = TASK.problems("train", 1000, seed=3)
    assert Counter(p.difficulty for p in problems) == {d: 200 for d in LEVELS}
    assert len({p.id for p in problems}) == 1000  # repeats of tiny levels get an -r<k> suffix
    for p in problems:
        ops = operands_of(p.prompt)
        assert tuple(len(str(x)) for x in ops) == LEVELS[p.difficulty]
        assert p.answer == str(sum(ops)) and p.reference == trace(ops)
        assert p.id.startswith(f"arith-d{p.difficulty}-") and p.source == "arithmetic"
    big = [p for p in problems if p.difficulty >= 2]
    assert len({p.prompt for p in big}) == len(big)  # large levels never repeat


def test_n_none_gives_a_standard_size_per_level():
    assert Counter(p.difficulty for p in TASK.problems("eval", None, difficulties=[2, 4])) == {2: 500, 4: 500}


def test_difficulty_list_and_weights():
    assert {p.difficulty for p in TASK.problems("eval", 40, 0, difficulties=[4, 5])} == {4, 5}
    counts = Counter(p.difficulty for p in TASK.problems("train", 100, 0, difficulties={1: 3.0, 5: 1.0}))
    assert counts == {1: 75, 5: 25}
    assert {p.difficulty for p in ArithmeticTask(difficulties=(3,)).problems("train", 10)} == {3}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: TASK.problems("dev", 5), "unknown split"),
        (lambda: TASK.problems("train", -1), "n must be >= 0"),
        (lambda: TASK.problems("train", 5, difficulties=[6]), "levels among"),
        (lambda: TASK.problems("train", 5, difficulties={1: -1.0}), ">= 0"),
        (lambda: operands_of("What is love?"), "not an arithmetic prompt"),
    ],
)
def test_bad_inputs_raise_task_error(call, message):
    with pytest.raises(TaskError, match=message):
        call()


def test_trace_format_example():
    assert trace((58, 67)) == "58+67\n8+7=15\n5+6+1=12"
    assert trace((193, 45)) == "193+045\n3+5=8\n9+4=13\n1+1=2"
    assert add_columns((999, 999, 999)) == ("999+999+999\n9+9+9=27\n9+9+9+2=29\n9+9+9+2=29", 2997)
    assert trace_answer("193+045") is None and trace_answer("3+5=8\n9+4=13\n1+1=2") == 238


def _check_trace(operands, text):
    """The first line aligns the operands; every later line adds the column's digits plus the
    carry-in, and the sums are right."""
    first, *columns = text.split("\n")
    width = max(len(str(x)) for x in operands)
    assert [int(t) for t in first.split("+")] == list(operands)
    assert all(len(t) == width for t in first.split("+"))
    carry = 0
    for i, line in enumerate(columns):
        lhs, rhs = line.split("=")
        digits = [int(str(x)[-1 - i]) for x in operands if len(str(x)) > i]
        assert [int(t) for t in lhs.split("+")] == digits + ([carry] if carry else [])
        assert sum(digits) + carry == int(rhs)
        carry = int(rhs) // 10


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_trace_is_correct_for_any_operands(operands):
    text, answer = add_columns(operands)
    _check_trace(operands, text)
    assert answer == sum(operands) == trace_answer(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.randoms(use_true_random=False))
def test_ladder_traces_are_correct(level, rng):
    ops = tuple(rng.randint(0 if d == 1 else 10 ** (d - 1), 10**d - 1) for d in LEVELS[level])
    problem = make_problem(ops, level)
    _check_trace(ops, problem.reference)
    assert trace_answer(problem.reference) == int(problem.answer)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1234", True), (" 1234\n", True), ("+1234", True), ("1,234", True), ("01234", True),
        ("1234.0", False), ("12,34", False), ("-1234", False), ("1 234", False), ("1235", False),
        ("", False), ("abc", False), ("١٢٣٤", False), (None, False), (1234, False),
    ],
)  # fmt: skip
def test_verifier_edge_cases(text, ok):
    problem = make_problem((1000, 234), 4)
    assert TASK.verify(problem, text) is ok


def test_extract_reads_the_answer_block():
    response = template.render("off", "Easy.", " 42 ")
    assert TASK.extract(response) == "42"
    assert TASK.extract("no tags at all") is None


def _error_rate(teacher, level, mode, n, rng):
    problems = TASK.problems("train", 300, seed=level, difficulties=[level])
    responses = [(p, teacher.respond(p, mode, rng)) for p in problems * (n // 300)]
    wrong = sum(not TASK.verify(p, TASK.extract(r)) for p, r in responses)
    return wrong / n


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_teacher_error_rates_are_respected(level):
    teacher, rng = ScriptedTeacher(seed=0), random.Random(level)
    p_on, p_off = DEFAULT_ERROR_RATES[level]
    assert _error_rate(teacher, level, "on", 6000, rng) == pytest.approx(p_on, abs=0.02)
    assert _error_rate(teacher, level, "off", 6000, rng) == pytest.approx(p_off, abs=0.025)


def test_think_off_errs_more_as_difficulty_grows():
    offs = [DEFAULT_ERROR_RATES[d][1] for d in sorted(LEVELS)]
    assert offs == sorted(offs) and all(off >= on for on, off in DEFAULT_ERROR_RATES.values())
    rng, teacher = random.Random(0), ScriptedTeacher()
    assert _error_rate(teacher, 5, "off", 3000, rng) > _error_rate(teacher, 5, "on", 3000, rng) + 0.5


@pytest.mark.parametrize("mode", ["on", "off"])
def test_teacher_responses_parse_and_errors_are_consistent(mode):
    teacher = ScriptedTeacher(error_rates={d: (0.5, 0.5) for d in LEVELS}, seed=1)
    wrong = 0
    for problem in TASK.problems("train", 500, seed=11):
        parsed = template.parse(teacher.respond(problem, mode))
        assert parsed.format_ok and parsed.mode == mode, parsed.problems
        assert (parsed.think is not None) == (mode == "on")
        if mode == "on":
            assert trace_answer(parsed.think) == int(parsed.answer)  # a wrong answer follows its faulty trace
            if parsed.answer == problem.answer:
                assert parsed.think == problem.reference
        wrong += parsed.answer != problem.answer
    assert 200 < wrong < 300


def test_teacher_extreme_rates_and_validation():
    problem = make_problem((456, 7), 3)
    always = ScriptedTeacher(error_rates={3: (1.0, 1.0)})
    never = ScriptedTeacher(error_rates={3: (0.0, 0.0)})
    rng = random.Random(0)
    for mode in ("on", "off"):
        assert not any(TASK.verify(problem, TASK.extract(r)) for r in always.sample(problem, mode, 200, rng))
        assert all(TASK.verify(problem, TASK.extract(r)) for r in never.sample(problem, mode, 50, rng))
    for bad in ({3: (1.5, 0.0)}, {3: "x"}):
        with pytest.raises(TaskError, match="error_rates"):
            ScriptedTeacher(error_rates=bad)
    with pytest.raises(TaskError, match="difficulty"):
        never.respond(Problem("x", problem.prompt, problem.answer, "arithmetic"), "on")
    with pytest.raises(TaskError, match="mode"):
        never.respond(problem, "maybe")  # type: ignore[arg-type]


def test_teacher_is_seeded():
    problem = make_problem((9876, 5432), 5)
    a, b = ScriptedTeacher(seed=3), ScriptedTeacher(seed=3)
    assert a.sample(problem, "off", 20) == b.sample(problem, "off", 20)
    assert a.sample(problem, "on", 20, random.Random(1)) == b.sample(problem, "on", 20, random.Random(1))
