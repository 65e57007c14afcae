"""Repair (issue 22): a pipeline's file over its accuracy budget, rebuilt cheapest repair first and
measured on the deployed file until one is within budget (see :mod:`.loop`)."""

from __future__ import annotations

from edge_opt.repair.loop import Limits, RepairBudget, Repairer, RepairResult, Score, Trial, choose_trial, repair

__all__ = ["Limits", "RepairBudget", "RepairResult", "Repairer", "Score", "Trial", "choose_trial", "repair"]
