from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import training_component


@training_component()
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
    run_id: str = "",
    earlier: Input[Artifact] = None,
    task_config: dsl.TaskConfig = None,
):
    """Benchmark the RL policy against its baseline: the report, the table and the gated metrics.
    ``earlier``: another evaluate step's results, whose models are not scored again. With vLLM on a
    cluster the evaluation is a job on the train image, like training."""
    from hipo.pipeline import steps

    models = {baseline_name: baseline.path, steps.rl_arm_name(config.path): candidate.path}
    values = steps.evaluate(
        config.path, models, dataset.path, results.path, baseline_name, report.path, summary.path,
        earlier_dir=earlier.path if earlier else None, run_id=run_id, task_config=task_config,
    )  # fmt: skip
    for key, value in values.items():
        metrics.log_metric(key, value)
