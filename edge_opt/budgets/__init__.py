"""Budgets: the check grammar (``grammar``) and the choice of a target's artifact (``choose``).

Below every stage that judges a record (analysis, the search, optimize, reports, the gate).
"""
