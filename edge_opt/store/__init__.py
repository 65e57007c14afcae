"""The result store: a run folder (results.json, samples.npz) and the SQLite history, written and read back.

It only stores: rendering a run is ``edge_opt.report``'s.
"""

from edge_opt.store.history import TrendPoint, append_history, candidate_key, check_history, read_history, record_key
from edge_opt.store.run import RESULTS, SAMPLES, SCHEMAS, load_run, load_samples, load_schema, relative_paths, write_run
from edge_opt.store.view import RunView, load_view

__all__ = [
    "RESULTS",
    "SAMPLES",
    "SCHEMAS",
    "RunView",
    "TrendPoint",
    "append_history",
    "candidate_key",
    "check_history",
    "load_run",
    "load_samples",
    "load_schema",
    "load_view",
    "read_history",
    "record_key",
    "relative_paths",
    "write_run",
]
