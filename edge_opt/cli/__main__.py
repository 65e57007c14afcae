"""``python -m edge_opt.cli``: the same as ``edge-opt``."""

from edge_opt.cli import main

main()
