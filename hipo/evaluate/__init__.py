"""Evaluation: benchmark runs, metrics, the paper's comparison table and the run report.

    benchmarks = load_benchmarks(config.eval, config.seed)
    result = evaluate_model(engine, benchmarks, config, Path("out/eval/hipo"))   # resumable
    write_report({"Cold-Start (mix)+HiPO": result, ...}, "out/report")  # html, md, metrics.json

Metric definitions: hipo/evaluate/metrics.py.
"""

from hipo.evaluate.benchmarks import Benchmark, labels_from_dataset, load_benchmark, load_benchmarks
from hipo.evaluate.metrics import EvalResult
from hipo.evaluate.report import write_report
from hipo.evaluate.runner import evaluate_model, load_result
from hipo.evaluate.table import comparison_table, detail_table, to_markdown

__all__ = [
    "Benchmark",
    "EvalResult",
    "comparison_table",
    "detail_table",
    "evaluate_model",
    "labels_from_dataset",
    "load_benchmark",
    "load_benchmarks",
    "load_result",
    "to_markdown",
    "write_report",
]
