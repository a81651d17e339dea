"""What every component shares: the step image and no package installs at run time."""

from functools import partial

from kfp import dsl

from hipo.launch.images import STEP_IMAGE

# The image already holds hipo and kfp: nothing is pip-installed when a step starts.
component = partial(dsl.component, base_image=STEP_IMAGE, install_kfp_package=False)

# Training steps, and evaluation steps (vLLM on a cluster), launch a TrainJob: the env, volumes, node
# selector and tolerations set on their task go to the job's pods, not to the launcher's own pod (env
# goes to both). Resources stay on the launcher's pod (apply_to_task): they are its own CPU and memory,
# which the launcher does not copy to the job; the job's GPUs come from the run configuration, its CPU
# and memory from the runtime.
training_component = partial(
    component,
    task_config_passthroughs=[
        dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.RESOURCES, apply_to_task=True),
        dsl.TaskConfigField.KUBERNETES_TOLERATIONS,
        dsl.TaskConfigField.KUBERNETES_NODE_SELECTOR,
        dsl.TaskConfigField.KUBERNETES_AFFINITY,
        dsl.TaskConfigField.KUBERNETES_VOLUMES,
        dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.ENV, apply_to_task=True),
    ],
)
