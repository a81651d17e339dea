"""The HiPO learning signal before any training: cold-start data and advantages per difficulty.

First the hybrid data pipeline builds the Cold-Start datasets from the scripted teacher and the
quality gate checks them. Then the signal table:

For each difficulty, groups of G rollouts from the scripted teacher, half forced Think-on and half
Think-off (a policy that has not yet decided), are verified and scored; the table shows which mode
HiPO's judge advantage pushes toward and what plain GRPO would do with the same groups. HiPO should
favour Think-off where both modes pass and Think-on where Think-off fails.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hipo.config import RunConfig
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.tasks.teacher import ScriptedTeacher
from hipo.train import algorithm as alg
from hipo.train.registry import hipo_mode_advantages
from hipo.train.scoring import rewards, score


@dataclass(frozen=True)
class LevelSignal:
    difficulty: int
    pass_on: float
    pass_off: float
    hipo_judge_off: float  # mean judge advantage of Think-off responses (> 0: pushes toward Think-off)
    grpo_adv_off: float  # mean GRPO advantage of Think-off responses

    @property
    def hipo_prefers(self) -> str:
        return "off" if self.hipo_judge_off > 0 else "on"


def score_groups(config: RunConfig, difficulty: int, n_groups: int, seed: int) -> LevelSignal:
    """Score ``n_groups`` balanced groups at one difficulty with the configured reward and advantages."""
    task = ArithmeticTask()
    teacher = ScriptedTeacher(seed=seed)
    rng = random.Random(seed)
    g = config.rl.group_size
    modes = ["on" if i < g // 2 else "off" for i in range(g)]
    problems = task.problems("eval", n_groups, seed, difficulties=[difficulty])
    correct, fmt, mode_codes = [], [], []
    for problem in problems:
        scores = [score(task, problem, teacher.respond(problem, m, rng)) for m in modes]
        correct.append([s.correct for s in scores])
        fmt.append([s.format_ok for s in scores])
        mode_codes.append([s.mode for s in scores])
    acc, ok = torch.tensor(correct, dtype=torch.float), torch.tensor(fmt, dtype=torch.float)
    codes = torch.tensor(mode_codes)
    rl = config.rl
    raw = rewards(rl, acc, ok)
    judge, _ = hipo_mode_advantages(rl, raw, codes)
    grpo = alg.grpo_advantages(raw, rl.eps)
    off, on = codes == alg.MODE_OFF, codes == alg.MODE_ON
    return LevelSignal(
        difficulty=difficulty,
        pass_on=float(acc[on].mean()),
        pass_off=float(acc[off].mean()),
        hipo_judge_off=float(judge[off].mean()),
        grpo_adv_off=float(grpo[off].mean()),
    )


def run_signal_table(
    config: RunConfig, out_dir: str | Path, problems_per_level: int = 200
) -> list[LevelSignal]:
    """Build and gate the datasets under ``out_dir``, print the signal table and return its rows."""
    from hipo.data.run import generate
    from hipo.quality import check, validate_dataset, write_report

    start = time.perf_counter()
    out = Path(out_dir)
    stats = generate(config, out / "data")
    train = stats["splits"]["train"]
    print(
        f"cold-start data: {train['rows']} train rows, think-on share {train['think_on_share']:.2f}, "
        f"think-on by level {_share_by_level(train['level'])} → {out / 'data'}"
    )
    gate = check(validate_dataset(out / "data" / "mix", config.quality))
    report = write_report(gate, out / "quality")["report.html"]
    print(f"quality gate: {sum(c.success is True for c in gate.checks)} expectations passed → {report}")
    print(
        f"HiPO signal on the arithmetic task: G={config.rl.group_size}, bias={config.rl.bias}, "
        f"omega={config.rl.omega}, {problems_per_level} groups per difficulty"
    )
    print(
        f"{'level':>5} {'pass on':>8} {'pass off':>9} {'HiPO judge(off)':>16} {'GRPO adv(off)':>14}  pushes"
    )
    rows = []
    for difficulty in config.task.difficulties:
        row = score_groups(config, difficulty, problems_per_level, config.seed + difficulty)
        rows.append(row)
        print(
            f"{row.difficulty:>5} {row.pass_on:>8.3f} {row.pass_off:>9.3f} {row.hipo_judge_off:>16.3f} "
            f"{row.grpo_adv_off:>14.3f}  think-{row.hipo_prefers}"
        )
    print(f"done in {time.perf_counter() - start:.1f}s")
    return rows


def _share_by_level(levels: dict[str, dict[str, int]]) -> str:
    return " ".join(f"d{k}:{v.get('on', 0) / max(sum(v.values()), 1):.2f}" for k, v in sorted(levels.items()))
