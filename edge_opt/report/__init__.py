"""Rendering a stored run: report.md, report.json, checks.md and report.html."""
