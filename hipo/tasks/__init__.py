"""Tasks: problems with verifiable answers (arithmetic ladder, GSM8K / MATH), verifiers, a scripted teacher.

Only the light common interface is imported here; ``hipo.tasks.arithmetic`` and ``hipo.tasks.math``
load on demand (``get_task`` imports them).
"""

from hipo.tasks.base import Problem, Task, TaskError, get_task, normalize_split, task_from_config

__all__ = ["Problem", "Task", "TaskError", "get_task", "normalize_split", "task_from_config"]
