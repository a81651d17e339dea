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
    comparison: Input[Artifact] = None,
) -> str:
    """Register the policy in MLflow with its evaluation (alias challenger); returns the version.
    ``comparison``: the run's later evaluation against Cold-Start (on), whose cold starts the gate also
    holds a first champion against and whose table goes to the version's MLflow run."""
    from hipo.pipeline import steps

    return steps.register(
        config.path, model.path, results.path, run_id, dataset.uri, card.path,
        comparison.path if comparison else None,
    )  # fmt: skip


@component()
def gate(config: Input[Artifact], version: str, card: Output[Markdown]) -> bool:
    """The promotion gate against the current champion; True when the version may replace it."""
    from hipo.pipeline import steps

    return steps.gate(config.path, version, card.path)


@component()
def promote(config: Input[Artifact], version: str, card: Output[Markdown]) -> str:
    """Move the champion alias to the version that passed the gate."""
    from hipo.pipeline import steps

    return steps.promote(config.path, version, card.path)
