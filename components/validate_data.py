from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components._base import component


@component()
def validate_data(
    config: Input[Artifact], dataset: Input[Dataset], report: Output[HTML], metrics: Output[Metrics]
):
    """The great-expectations quality gate; fails the run with the failed expectations named."""
    from hipo.pipeline import steps

    for key, value in steps.validate_data(config.path, dataset.path, report.path).items():
        metrics.log_metric(key, value)
