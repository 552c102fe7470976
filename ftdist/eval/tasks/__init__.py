"""The evaluation tasks, by name (`--task NAME`, `eval.tasks[].task`)."""

from __future__ import annotations

from ftdist.eval.tasks.base import EvalContext, GenerationTask, Task
from ftdist.eval.tasks.perplexity import PerplexityTask
from ftdist.eval.tasks.qa import QATask
from ftdist.eval.tasks.questions import QuestionsTask
from ftdist.eval.tasks.score import ScoreTask
from ftdist.eval.tasks.sql import SQLTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (PerplexityTask, QATask, SQLTask, QuestionsTask, ScoreTask)}

__all__ = ["TASKS", "EvalContext", "GenerationTask", "Task"]
