from kfp.dsl import Artifact, Dataset, Metrics, Output

from components._base import component


@component()
def prepare(
    seed: int,
    base_model: str,
    task: str,
    datasets: list,
    train_size: int,
    eval_size: int,
    teacher: str,
    teacher_model: str,
    teacher_url: str,
    teacher_endpoint_model: str,
    judge: str,
    judge_url: str,
    judge_model: str,
    samples_per_mode: int,
    delta: float,
    sft_steps: int,
    rl_algorithm: str,
    rl_steps: int,
    group_size: int,
    omega: float,
    gamma: float,
    launch_backend: str,
    nodes: int,
    gpus_per_node: int,
    work_uri: str,
    benchmarks: list,
    eval_problems: int,
    model_name: str,
    max_accuracy_drop: float,
    max_token_increase: float,
    max_think_rate_increase: float,
    config_yaml: str,
    config_overrides: list,
    config: Output[Artifact],
    prompts: Output[Dataset],
    metrics: Output[Metrics],
):
    """The run configuration from the pipeline parameters, and the train/eval prompts."""
    from hipo.pipeline import steps
    from hipo.pipeline.parameters import CONFIG_PARAMETERS

    values = {name: value for name, value in locals().items() if name in CONFIG_PARAMETERS}
    for key, value in steps.prepare(values, config_yaml, config_overrides, config.path, prompts.path).items():
        metrics.log_metric(key, value)
