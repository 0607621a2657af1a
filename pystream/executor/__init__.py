"""Executors run a stage's tasks, one per partition.

The interface is deliberately narrow (``run_tasks`` and ``stop``) so that a process pool, or actors on a Ray
cluster, can stand in for the in-process executor without the scheduler knowing.
"""

from pystream.executor.base import Executor
from pystream.executor.inprocess import InProcessExecutor
from pystream.taskcontext import TaskContext

__all__ = ["Executor", "TaskContext", "InProcessExecutor"]
