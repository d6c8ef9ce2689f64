"""The parallelizer: turn a Python script and its data into a task graph.

Automatic mode (`plan_job`) analyses the script (AST, data-dependency graph, pure functions,
combinable loops, aggregation tags), cuts the CSV into chunks and generates the chunk and combine
scripts; anything it cannot prove safe runs unsplit. Manual mode's group shape is `plan_group`.
Both return a Plan: a job spec for jobspec.parse_spec, the files it names, and an explanation.
"""

from runsurge_master.parallelizer.analysis import Analysis, analyze
from runsurge_master.parallelizer.group import plan_group
from runsurge_master.parallelizer.memory import MemoryModel, fit_memory_model, refine_plan, refined
from runsurge_master.parallelizer.model import Plan, PlanError, PlanFiles, PlannedTask
from runsurge_master.parallelizer.plan import plan_job

__all__ = ["Analysis", "MemoryModel", "Plan", "PlanError", "PlanFiles", "PlannedTask", "analyze",
           "fit_memory_model", "plan_group", "plan_job", "refine_plan", "refined"]
