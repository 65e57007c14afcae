"""Hardware-aware neural architecture search (``edge-opt nas``, and ``model: {kind: nas}`` in a suite).

``space``: search spaces as data (the ``nas:`` block), each a keras-tuner HyperModel.
``search``: the trial (train briefly → run_pipeline → measure the deployed file with the
harness) behind a keras-tuner Tuner, scoring, resume, ``nas.json``. ``pareto``: fronts,
hypervolume and the efficacy figures (pure functions). ``executors``: where trials train
(this process, local processes, Ray tasks); measurements stay in the search's process.
``predictor``: a latency regressor learned from this device's measured trials.
keras_tuner and TensorFlow are imported lazily.
"""
