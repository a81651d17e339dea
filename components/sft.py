from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components._base import training_component


@training_component()
def sft(
    config: Input[Artifact],
    dataset: Input[Dataset],
    cold_start_set: str,
    run_id: str,
    model: Output[Model],
    metrics: Output[Metrics],
    task_config: dsl.TaskConfig = None,
):
    """Cold-start SFT on the ``cold_start_set`` ("mix" or "on"), in process or as a TrainJob."""
    from hipo.pipeline import steps

    result = steps.sft(config.path, dataset.path, cold_start_set, model.path, run_id, task_config)
    for key, value in result.items():
        metrics.log_metric(key, value)
