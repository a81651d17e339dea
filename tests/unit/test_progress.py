"""The progress view on kfp.local's output as kfp 2.17 prints it (the pipeline test runs the real one;
these cover a terminal, verbose mode and a failed step)."""

import io
import json

from hipo.pipeline.progress import ProgressView

CYAN, GREEN, RED, RESET = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"


def kfp_lines(task, status="SUCCESS", body=("step output",)):
    colour = GREEN if status == "SUCCESS" else RED
    return [
        f"13:00:00.000 - INFO - Executing task {CYAN}'{task}'{RESET}",
        "13:00:00.001 - INFO - Streamed logs:",
        *(f"    {line}" for line in body),
        f"13:00:01.000 - INFO - Task {CYAN}'{task}'{RESET} finished with status {colour}{status}{RESET}",
    ]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def make_step(run_dir, task, metrics=None, error=None):
    folder = run_dir / task
    folder.mkdir(parents=True)
    (folder / "step.json").write_text(json.dumps({"started": 1.0, "seconds": 2.0}))
    if error:
        (folder / "error.txt").write_text(error)
        return
    output = {"artifacts": {"metrics": {"artifacts": [{"uri": "x", "metadata": metrics or {}}]}}}
    (folder / "executor_output.json").write_text(json.dumps(output))


def feed(view, lines):
    for line in lines:
        view.write(line + "\n")
    view.close()


def test_a_terminal_gets_training_progress_rewritten_in_place(tmp_path):
    root, out = tmp_path / "artifacts", Terminal()
    make_step(root / "run-1", "sft", {"loss": 0.5, "eval_loss": 0.25, "lr": 0.1})
    named = []
    view = ProgressView(root, set(), out, on_run_dir=named.append)
    feed(view, kfp_lines("sft", body=("sft step 10 · loss 0.9", "sft step 20 · loss 0.5")))
    text = out.getvalue()
    assert named == [root / "run-1"]
    assert text.count("\r\x1b[K") >= 2 and "sft step 20 · loss 0.5" in text  # one line, rewritten
    assert "sft                      done       " in text and "loss 0.5, eval_loss 0.25" in text
    assert "lr" not in text.split("done")[1]  # only the key metrics
    log = (root / "run-1" / "logs" / "sft.log").read_text()
    assert "sft step 10" in log and "\x1b[" not in log and "Executing task 'sft'" in log


def test_verbose_passes_everything_through_without_colour_when_piped(tmp_path):
    root, out = tmp_path / "artifacts", io.StringIO()
    make_step(root / "run-1", "prepare", {"train_prompts": 3})
    feed(ProgressView(root, set(), out, verbose=True), kfp_lines("prepare", body=("[KFP Executor] input",)))
    text = out.getvalue()
    assert "[KFP Executor] input" in text and "Executing task 'prepare'" in text and "\x1b[" not in text


def test_a_failed_step_shows_its_error_and_log(tmp_path):
    root, out = tmp_path / "artifacts", io.StringIO()
    make_step(root / "run-1", "validate-data", error="GateFailed: think_on_share:train out of range\n")
    feed(ProgressView(root, set(), out), kfp_lines("validate-data", status="FAILURE"))
    text = out.getvalue()
    assert "validate-data            FAILED" in text and "GateFailed: think_on_share:train" in text
    assert f"log: {root / 'run-1' / 'logs' / 'validate-data.log'}" in text
