"""edge-opt: optimize ML models for edge targets and prove each artifact is fit to ship.

Importing this package is cheap: TensorFlow and the runtimes are imported lazily by the
modules that need them (see ``edge_opt.core.tfkeras``).
"""

import sys

__version__ = "0.1.0"

# OpenVINO's converters send usage telemetry from a forked process; forking while
# TensorFlow's threads hold locks can deadlock the conversion (seen here), and edge-opt
# sends nothing anywhere. With the module absent, OpenVINO falls back to its own stub.
sys.modules.setdefault("openvino_telemetry", None)
