from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import component


@component()
def evaluate(
    config: Input[Artifact],
    dataset: Input[Dataset],
    baseline: Input[Model],
    baseline_name: str,
    candidate: Input[Model],
    report: Output[HTML],
    summary: Output[Markdown],
    results: Output[Artifact],
    metrics: Output[Metrics],
    earlier: Input[Artifact] = None,
):
    """Benchmark the RL policy against its baseline: the report, the table and the gated metrics.
    ``earlier``: another evaluate step's results, whose models are not scored again."""
    from hipo import steps

    models = {baseline_name: baseline.path, steps.rl_arm_name(config.path): candidate.path}
    values = steps.evaluate(
        config.path, models, dataset.path, results.path, baseline_name, report.path, summary.path,
        earlier_dir=earlier.path if earlier else None,
    )  # fmt: skip
    for key, value in values.items():
        metrics.log_metric(key, value)
