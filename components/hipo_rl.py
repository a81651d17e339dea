from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from components._base import training_component


@training_component()
def hipo_rl(
    config: Input[Artifact],
    policy: Input[Model],
    cold_start_set: str,
    algorithm: str,
    run_id: str,
    model: Output[Model],
    metrics: Output[Metrics],
    task_config: dsl.TaskConfig = None,
):
    """HiPO (or GRPO) RL from the cold-start policy trained on ``cold_start_set``, in process or as a
    TrainJob."""
    from hipo.pipeline import steps

    result = steps.hipo_rl(
        config.path, policy.path, algorithm, model.path, run_id, task_config, cold_start_set
    )
    for key, value in result.items():
        metrics.log_metric(key, value)
