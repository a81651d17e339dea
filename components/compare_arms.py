from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import training_component


@training_component()
def compare_arms(
    config: Input[Artifact],
    dataset: Input[Dataset],
    cold_start_on: Input[Model],
    cold_start_on_grpo: Input[Model],
    cold_start_mix: Input[Model],
    cold_start_mix_grpo: Input[Model],
    cold_start_mix_hipo: Input[Model],
    report: Output[HTML],
    summary: Output[Markdown],
    results: Output[Artifact],
    metrics: Output[Metrics],
    run_id: str = "",
    earlier: Input[Artifact] = None,
    task_config: dsl.TaskConfig = None,
):
    """The paper's comparison: the five arms on the same benchmarks, relative to Cold-Start (on)
    (``register`` attaches the table to the HiPO arm's version). ``earlier``: the evaluate step's
    results, whose models are not scored again. With vLLM on a cluster the evaluation is a job
    on the train image, like training."""
    from hipo.pipeline import steps

    values = steps.compare_arms(
        config.path,
        dataset.path,
        [
            cold_start_on.path,
            cold_start_on_grpo.path,
            cold_start_mix.path,
            cold_start_mix_grpo.path,
            cold_start_mix_hipo.path,
        ],
        results.path,
        report.path,
        summary.path,
        earlier.path if earlier else None,
        run_id,
        task_config,
    )
    for key, value in values.items():
        metrics.log_metric(key, value)
