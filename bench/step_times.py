"""Per-step wall times of one `hipo run`, read from its console log (kfp.local's task lines).

    hipo run --preset smollm2-gsm8k --arms baseline --out runs/smollm2 > run.log 2>&1
    python bench/step_times.py run.log [--json times.json]

kfp.local runs the steps one at a time and stamps each start and finish with the time of day, so
each step's wall time is the gap between its two lines (a run that passes midnight is handled).
The RL steps' own times are in the hipo-rl step's `work-*/metrics.jsonl` (`time_step`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '(.+?)'|Task '(.+?)' finished)")
_DAY = 24 * 3600


@dataclass(frozen=True)
class StepTimes:
    step_wall_s: dict[str, float]  # in the order the steps finished

    @property
    def total_s(self) -> float:
        return round(sum(self.step_wall_s.values()), 1)


def step_times(log: str) -> StepTimes:
    """Wall seconds per step."""
    started: dict[str, float] = {}
    walls: dict[str, float] = {}
    day = 0.0
    last = None
    for raw in log.splitlines():
        line = _ANSI.sub("", raw)
        if not (task := _TASK.match(line.strip())):
            continue
        clock = int(task.group(1)) * 3600 + int(task.group(2)) * 60 + float(task.group(3))
        if last is not None and clock + day < last:
            day += _DAY
        last = clock + day
        if task.group(4):
            started[task.group(4)] = last
        elif task.group(5) in started:
            walls[task.group(5)] = round(last - started.pop(task.group(5)), 1)
    if not walls:
        raise ValueError("no finished kfp.local task in the log: pass the console output of `hipo run`")
    return StepTimes(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("log", type=Path, help="the console output of `hipo run`")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        times = step_times(args.log.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as err:
        print(f"step_times: {err}", file=sys.stderr)
        return 2
    print("| step | wall time (s) |\n|---|---:|")
    for step, seconds in times.step_wall_s.items():
        print(f"| {step} | {seconds:.0f} |")
    print(f"| all steps | {times.total_s:.0f} |")
    if args.json:
        figures = {**asdict(times), "total_s": times.total_s}
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
