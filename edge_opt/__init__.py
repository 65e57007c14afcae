"""edge-opt: optimize ML models for edge targets and prove each artifact is fit to ship.

Importing this package is cheap: TensorFlow and the runtimes are imported lazily by the
modules that need them (see ``edge_opt._tf``).
"""

__version__ = "0.1.0"
