"""The command line: one module per command group; ``main`` is the ``edge-opt`` entry point."""

from edge_opt.cli.app import app, main

__all__ = ["app", "main"]
