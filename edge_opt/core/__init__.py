"""Small utilities every stage may use.

Errors, files, config, units, processes, lazy TensorFlow, plug-ins, provenance, arrays,
artifacts and lineage. Nothing here imports another stage of edge-opt.
"""
