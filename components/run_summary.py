from kfp import dsl
from kfp.dsl import Markdown, Output

from components._base import component


@component()
def run_summary(status: dsl.PipelineTaskFinalStatus, summary: Output[Markdown]) -> str:
    """The exit handler: how the run ended and, on failure, which step failed and why."""
    from hipo.pipeline import steps

    return steps.run_summary(
        {
            "state": status.state,
            "pipeline_job_resource_name": status.pipeline_job_resource_name,
            "error_code": status.error_code,
            "error_message": status.error_message,
        },
        summary.path,
    )
