from kfp.dsl import Artifact, Input, Output

from components._base import component


@component()
def stage_base_model(config: Input[Artifact], staged: Output[Artifact]):
    """The run configuration with a Hub base model copied once to object storage (cluster backends)."""
    from hipo.pipeline import steps

    steps.stage_base_model(config.path, staged.path)
