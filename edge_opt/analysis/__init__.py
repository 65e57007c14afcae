"""Analyses of a deployed artifact through its runtime: accuracy, slices and fairness,
robustness, explanations, drift. Each sees only the artifact's predictions."""
