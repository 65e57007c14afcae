"""Repair (issue 22): a pipeline's file over its accuracy budget, rebuilt cheapest repair first and
measured on the deployed file until one is within budget (see :mod:`.loop`)."""

from __future__ import annotations

from edge_opt.repair.loop import RepairBudget, Repairer, RepairResult, Score, Trial, repair

__all__ = ["RepairBudget", "RepairResult", "Repairer", "Score", "Trial", "repair"]
