"""The arithmetic ladder: seeded addition problems at five difficulty levels.

d1 2-digit + 1-digit; d2 2-digit + 2-digit; d3 3-digit + 1-digit (the "mixed" rung, which Think-on
solves at more tokens); d4 3-digit + 3-digit; d5 4-digit + 4-digit. A tiny model answers d1–d3 directly
as well as step by step, and d4–d5 only step by step (docs/results.md). Every trace column adds two
digits and a carry: with the previous d3 (3+2) direct answers fell a few points short of Think-on's on
most seeds, and d5's three-term columns (3+3+3) were the rare sums RL got wrong (docs/results.md,
"The ladder"). Every level has hundreds of prompts or more: a ladder that starts at
single digits (100 prompts) would hold whole addition facts out of training, and no model can answer an
unseen fact directly. Splits are fixed by a hash of the unordered operands (20% eval), independent of
the seed, so no train prompt (or its commuted twin) ever appears in eval. d1 (900 prompts) repeats
prompts once its split is exhausted; repeated problems get an ``-r<k>`` id suffix so ids stay unique
within one list.

The canonical trace first writes the operands one under the other (zero-padded to one width, as on
paper), then adds the columns right to left, one line per column, carry-in written as the last term::

    What is 58 + 67?   ->   58+67
                            8+7=15
                            5+6+1=12        answer 125 (most-significant digit first)

The scripted teacher lives in :mod:`hipo.tasks.teacher`; ``ScriptedTeacher`` is importable from here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache

from hipo import template
from hipo.tasks.base import Problem, TaskError, normalize_split

# digits of each operand, per level
LEVELS: dict[int, tuple[int, ...]] = {1: (2, 1), 2: (2, 2), 3: (3, 1), 4: (3, 3), 5: (4, 4)}
EVAL_PERCENT = 20
DEFAULT_PER_LEVEL = 500  # problems per level when n is None
_ENUMERATE_UP_TO = 1000  # levels with at most this many prompts are enumerated, not sampled
_PROMPT = re.compile(r"What is (\d+(?: \+ \d+)+)\?")
_INTEGER = re.compile(r"\+?(\d{1,3}(?:,\d{3})+|\d+)", re.ASCII)

Weights = Sequence[int] | Mapping[int, float]


def prompt_of(operands: Sequence[int]) -> str:
    return "What is " + " + ".join(map(str, operands)) + "?"


@lru_cache(maxsize=1 << 16)
def operands_of(prompt: str) -> tuple[int, ...]:
    """The operands of an arithmetic prompt ("What is 123 + 45?")."""
    match = _PROMPT.fullmatch(prompt.strip())
    if match is None:
        raise TaskError(f"not an arithmetic prompt: {prompt!r} (expected 'What is A + B?')")
    return tuple(int(x) for x in match.group(1).split(" + "))


def aligned(operands: Sequence[int]) -> str:
    """The operands zero-padded to one width, the trace's first line: "58+7" -> "58+07"."""
    width = max(len(str(x)) for x in operands)
    return "+".join(str(x).zfill(width) for x in operands)


def add_columns(operands: Sequence[int], slip: tuple[int, str] | None = None) -> tuple[str, int]:
    """(trace, answer) of column addition; ``slip=(column, kind)`` injects one mistake and propagates it.

    kind "drop": the carry into that column is forgotten; "up"/"down": that column's sum is off by one.
    Later columns carry on from the faulty sum, so the answer stays consistent with the trace.
    """
    texts = [str(x) for x in operands]
    width = max(map(len, texts))
    lines, value, carry = [aligned(operands)], 0, 0
    for i in range(width):
        terms = [t[-1 - i] for t in texts if len(t) > i]
        total = sum(map(int, terms))
        if carry and not (slip and slip[0] == i and slip[1] == "drop"):
            terms.append(str(carry))
            total += carry
        if slip and slip[0] == i and slip[1] in ("up", "down"):
            total += 1 if slip[1] == "up" else -1
        lines.append("+".join(terms) + "=" + str(total))
        value += (total % 10) * 10**i
        carry = total // 10
    return "\n".join(lines), value + carry * 10**width


def trace(operands: Sequence[int]) -> str:
    return add_columns(operands)[0]


def carries_in(operands: Sequence[int]) -> list[int]:
    """The carry into each column (index 0 = units), 0 where there is none."""
    carries, carry = [], 0
    for i in range(max(len(str(x)) for x in operands)):
        carries.append(carry)
        carry = (sum(x // 10**i % 10 for x in operands) + carry) // 10
    return carries


def trace_answer(text: str) -> int | None:
    """The number a trace spells out: each column line's sum digit, units first, plus the final carry
    (the aligned operands of the first line, when there, are skipped)."""
    value, carry = 0, 0
    lines = text.strip().split("\n")
    if "=" not in lines[0]:
        lines = lines[1:]
    if not lines:
        return None
    for i, line in enumerate(lines):
        _, eq, rhs = line.partition("=")
        if not eq or not rhs.strip().isdigit():
            return None
        total = int(rhs)
        value += (total % 10) * 10**i
        carry = total // 10
    return value + carry * 10 ** len(lines)


def parse_integer(text: str | None) -> int | None:
    """An integer answer, tolerant of surrounding whitespace, a leading '+' and thousands commas."""
    if not isinstance(text, str):
        return None
    match = _INTEGER.fullmatch(text.strip())
    return int(match.group(1).replace(",", "")) if match else None


def _key(operands: Sequence[int]) -> str:
    return "+".join(map(str, sorted(operands)))  # commuted twins share a key, hence a split


def split_of(operands: Sequence[int]) -> str:
    """The split of a prompt ("train" or "test"), from a hash of its unordered operands."""
    digest = hashlib.blake2b(("hipo-arith|" + _key(operands)).encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") % 100 < EVAL_PERCENT else "train"


def make_problem(operands: Sequence[int], difficulty: int | None = None) -> Problem:
    operands = tuple(int(x) for x in operands)
    prompt = prompt_of(operands)
    tag = hashlib.blake2b(prompt.encode(), digest_size=5).hexdigest()
    return Problem(
        id=f"arith-d{difficulty or 0}-{tag}",
        prompt=prompt,
        answer=str(sum(operands)),
        source="arithmetic",
        difficulty=difficulty,
        reference=trace(operands),
    )


def _draw(level: int, rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.randint(0 if d == 1 else 10 ** (d - 1), 10**d - 1) for d in LEVELS[level])


def _space(level: int) -> int:
    size = 1
    for d in LEVELS[level]:
        size *= 10 if d == 1 else 9 * 10 ** (d - 1)
    return size


@cache
def _pool(level: int, split: str) -> tuple[tuple[int, ...], ...]:
    """Every prompt of a small level that falls in ``split``, in a fixed order."""
    ranges = [range(0, 10) if d == 1 else range(10 ** (d - 1), 10**d) for d in LEVELS[level]]
    combos: list[tuple[int, ...]] = [()]
    for r in ranges:
        combos = [(*c, x) for c in combos for x in r]
    return tuple(c for c in combos if split_of(c) == split)


def resolve_weights(difficulties: Weights) -> dict[int, float]:
    """A list of levels (equal weights) or a {level: weight} mapping, validated."""
    if isinstance(difficulties, Mapping):
        weights = {int(k): float(v) for k, v in difficulties.items()}
    else:
        weights = {int(d): 1.0 for d in difficulties}
    bad = sorted(d for d in weights if d not in LEVELS)
    if bad or not weights:
        raise TaskError(f"difficulties must be levels among {sorted(LEVELS)}, got {dict(weights) or '[]'}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise TaskError(f"difficulty weights must be >= 0 with a positive sum, got {weights}")
    return weights


def _counts(n: int, weights: dict[int, float]) -> dict[int, int]:
    """Stratified counts per level (largest remainder), so eval tables get even levels."""
    total = sum(weights.values())
    exact = {d: n * w / total for d, w in weights.items()}
    counts = {d: int(x) for d, x in exact.items()}
    order = sorted(exact, key=lambda d: (counts[d] - exact[d], d))
    for d in order[: n - sum(counts.values())]:
        counts[d] += 1
    return counts


class ArithmeticTask:
    """Addition problems of the ladder; exact integer verifier."""

    name = "arithmetic"

    def __init__(self, difficulties: Weights = (1, 2, 3, 4, 5)) -> None:
        self.weights = resolve_weights(difficulties)

    def problems(
        self, split: str, n: int | None = None, seed: int = 0, difficulties: Weights | None = None
    ) -> list[Problem]:
        """``n`` problems of ``split`` (None: 500 per level), stratified over the difficulty weights,
        deterministic per (split, n, seed, difficulties)."""
        split = normalize_split(split)
        weights = self.weights if difficulties is None else resolve_weights(difficulties)
        if n is None:  # there is no "all" of a generator: a standard size
            n = DEFAULT_PER_LEVEL * len(weights)
        if n < 0:
            raise TaskError(f"n must be >= 0 (or None for {DEFAULT_PER_LEVEL} per level), got {n}")
        rng = random.Random(f"hipo-arith|{split}|{seed}")
        out: list[Problem] = []
        for level, count in sorted(_counts(n, weights).items()):
            out.extend(self._level(level, split, count, rng))
        rng.shuffle(out)
        return out

    @staticmethod
    def _level(level: int, split: str, count: int, rng: random.Random) -> list[Problem]:
        picks: list[tuple[int, ...]] = []
        if _space(level) <= _ENUMERATE_UP_TO:
            pool = list(_pool(level, split))
            if not pool:
                raise TaskError(f"level d{level} has no {split} prompts")
            while len(picks) < count:
                rng.shuffle(pool)
                picks.extend(pool[: count - len(picks)])
        else:
            seen: set[tuple[int, ...]] = set()
            misses = 0  # past 10k misses in a row the split is (nearly) exhausted: allow repeats
            while len(picks) < count:
                ops = _draw(level, rng)
                if split_of(ops) == split and (ops not in seen or misses > 10_000):
                    seen.add(ops)
                    picks.append(ops)
                    misses = 0
                else:
                    misses += 1
        problems: list[Problem] = []
        times: dict[str, int] = {}
        for ops in picks:
            problem = make_problem(ops, level)
            k = times[problem.id] = times.get(problem.id, 0) + 1
            if k > 1:
                problem = dataclasses.replace(problem, id=f"{problem.id}-r{k}")
            problems.append(problem)
        return problems

    def extract(self, response: str) -> str | None:
        return template.parse(response).answer

    def verify(self, problem: Problem, predicted: str | None) -> bool:
        value = parse_integer(predicted)
        return value is not None and value == parse_integer(problem.answer)
