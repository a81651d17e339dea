"""The progress view of ``hipo run``: kfp.local's output, read line by line while the pipeline runs.

kfp.local prints everything (its task headers, each step's whole executor input, the step's own
output) to stdout. ``ProgressView`` takes that stream in place of stdout and

- writes each step's lines, colour codes removed, to ``<run>/logs/<task>.log`` (lines outside any
  step to ``pipeline.log``);
- shows one line when a step starts and one when it ends (duration, key metrics, or the error and
  where its log is), and the training steps' progress lines: on a terminal as one line rewritten in
  place, elsewhere at most one every ``PIPED_PROGRESS_EVERY_S`` seconds;
- with ``verbose``, passes every line through instead (colour codes kept only on a terminal).
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from hipo.pipeline.run_record import seconds_text, step_outcome

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r" - INFO - Executing task '([^']+)'")
TASK_END = re.compile(r" - (?:INFO|ERROR) - Task '([^']+)' finished with status (\w+)")
TRAINING = re.compile(r"^(sft step |rl step )")
LOGS_DIR = "logs"
PIPELINE_LOG = "pipeline.log"
PIPED_PROGRESS_EVERY_S = 30.0
_ERASE_LINE = "\r\x1b[K"


class ProgressView(io.TextIOBase):
    """A text stream (kfp.local's stdout) turned into step logs and a short progress view on ``out``.

    ``root``: the pipeline root; the run's folder is the one that appears in it after ``before``.
    ``on_run_dir`` is called once with that folder when it appears.
    """

    def __init__(
        self,
        root: Path,
        before: set[Path],
        out: TextIO,
        verbose: bool = False,
        on_run_dir: Callable[[Path], None] | None = None,
    ) -> None:
        self.root, self.before, self.out, self.verbose = root, before, out, verbose
        self.on_run_dir = on_run_dir
        self.terminal = out.isatty()
        self.run_dir: Path | None = None
        self.task = ""  # the step whose lines are coming in ("" before the first)
        self._pending = ""
        self._buffered: list[tuple[str, str]] = []  # (task, line) until the run folder exists
        self._files: dict[str, TextIO] = {}
        self._started = 0.0
        self._last_progress = 0.0
        self._live = False  # a rewritten progress line is on the terminal

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def close(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        self._end_live()
        for file in self._files.values():
            file.close()
        super().close()

    @property
    def logs_dir(self) -> Path | None:
        return self.run_dir / LOGS_DIR if self.run_dir else None

    def log_path(self, task: str) -> Path | None:
        return self.logs_dir / f"{task}.log" if self.logs_dir else None

    def _line(self, raw: str) -> None:
        clean = ANSI.sub("", raw)
        if started := TASK_START.search(clean):
            self.task, self._started = started.group(1), time.perf_counter()
            self._last_progress = 0.0
        self._find_run_dir()
        self._to_log(self.task, clean)
        if self.verbose:
            self.out.write((raw if self.terminal else clean) + "\n")
            self.out.flush()
            return
        if started:
            self._show(f"{self.task:<24} started")
        elif ended := TASK_END.search(clean):
            self._finished(ended.group(1), ended.group(2))
        elif TRAINING.match(clean.strip()):
            self._training(clean.strip())

    def _find_run_dir(self) -> None:
        if self.run_dir is not None or not self.root.is_dir():
            return
        new = [p for p in self.root.iterdir() if p.is_dir() and p not in self.before]
        if not new:
            return
        self.run_dir = max(new, key=lambda p: p.stat().st_mtime)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.on_run_dir is not None:
            self.on_run_dir(self.run_dir)
        if not self.verbose:
            self._show(f"artifacts: {self.run_dir}", stamp=False)
            self._show(f"step logs: {self.logs_dir}/<step>.log", stamp=False)
        for task, line in self._buffered:
            self._to_log(task, line)
        self._buffered.clear()

    def _to_log(self, task: str, line: str) -> None:
        if self.run_dir is None:
            self._buffered.append((task, line))
            return
        name = task or PIPELINE_LOG.removesuffix(".log")
        if name not in self._files:
            self._files[name] = (self.logs_dir / f"{name}.log").open("a", encoding="utf-8")
        self._files[name].write(line + "\n")
        self._files[name].flush()

    def _finished(self, task: str, status: str) -> None:
        took = seconds_text(time.perf_counter() - self._started)
        folder = self.run_dir / task if self.run_dir else None
        outcome = step_outcome(folder) if folder and folder.is_dir() else None
        if status == "SUCCESS":
            detail = outcome.metrics_text() if outcome else ""
            self._show(f"{task:<24} done    {took:>7}  {detail}".rstrip())
            return
        error = outcome.error.splitlines()[0] if outcome and outcome.error else "see its log"
        self._show(f"{task:<24} FAILED  {took:>7}  {error}")
        self._show(f"log: {self.log_path(task)}", stamp=False)

    def _training(self, line: str) -> None:
        text = f"{self.task:<24} {line}"
        if self.terminal:
            width = shutil.get_terminal_size((120, 24)).columns - 1
            self.out.write(_ERASE_LINE + f"{time.strftime('%H:%M:%S')}  {text}"[:width])
            self.out.flush()
            self._live = True
        elif time.perf_counter() - self._last_progress >= PIPED_PROGRESS_EVERY_S:
            self._last_progress = time.perf_counter()
            self._show(text)

    def _end_live(self) -> None:
        if self._live:
            self.out.write(_ERASE_LINE)
            self._live = False

    def _show(self, text: str, stamp: bool = True) -> None:
        self._end_live()
        prefix = f"{time.strftime('%H:%M:%S')}  " if stamp else "          "
        self.out.write(prefix + text + "\n")
        self.out.flush()
