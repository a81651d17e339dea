from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components._base import component


@component()
def register(
    config: Input[Artifact],
    model: Input[Model],
    results: Input[Artifact],
    dataset: Input[Dataset],
    run_id: str,
    card: Output[Markdown],
) -> NamedTuple("Registration", [("version", str), ("gate_passed", bool)]):
    """Register the policy in MLflow (alias challenger) and record the promotion gate's decision."""
    from collections import namedtuple

    from hipo import steps

    done = steps.register(config.path, model.path, results.path, run_id, dataset.uri, card.path)
    return namedtuple("Registration", ["version", "gate_passed"])(done["version"], done["passed"])


@component()
def promote(config: Input[Artifact], version: str, card: Output[Markdown]) -> str:
    """Move the champion alias to the version that passed the gate."""
    from hipo import steps

    return steps.promote(config.path, version, card.path)
