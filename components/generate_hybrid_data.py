from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components._base import component


@component()
def generate_hybrid_data(
    config: Input[Artifact], prompts: Input[Dataset], dataset: Output[Dataset], metrics: Output[Metrics]
):
    """Teacher samples in both modes, verified; mode choice; judge rationales → Cold-Start (mix) and (on)."""
    from hipo.pipeline import steps

    for key, value in steps.generate_hybrid_data(config.path, prompts.path, dataset.path).items():
        metrics.log_metric(key, value)
