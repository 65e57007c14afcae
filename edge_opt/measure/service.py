"""The measurement service: an artifact measured for a target profile, as records.

The one place that turns "this artifact, this profile's runtime entry, this many threads, on
these devices" into harness calls and ``Measurement`` records. The runner measures every
entry of a profile with it; ``optimize`` and the architecture search measure a file on the
profile's first runtime that can run it here (``measure_first``): the EdgeTPU delegate
where there is one, else the next entry (its labelled host proxy).

Nothing here scores accuracy or keeps a journal: callers get each record with the model's
outputs on the rows they passed (``Measured.outputs``) and do what their stage needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_opt.core.artifacts import Artifact
from edge_opt.measure.harness import HarnessOptions, measure
from edge_opt.measure.records import Measurement, build_record
from edge_opt.targets import RuntimeSpec, TargetProfile

#: A quick measurement (``optimize``'s latency column): enough runs for a p50 and a p90.
QUICK = HarnessOptions(min_runs=20, min_time_s=0.2, warmup_runs=5, max_time_s=10)

#: What measures a Keras file that no runtime entry of a profile reads: the reference runtime.
KERAS_REFERENCE = RuntimeSpec(runtime="keras", device="cpu")


@dataclass(frozen=True)
class Measured:
    """One measurement's record, and the model's outputs on the rows given (None unless ok)."""

    record: Measurement
    outputs: np.ndarray | None = None


def entries_for(profile: TargetProfile, fmt: str) -> list[RuntimeSpec]:
    """The runtime entries of ``profile`` that measure files of format ``fmt``, in order of preference."""
    return [rs for rs in profile.runtimes if rs.reads(fmt)]


def places_for(target: str, devices: list) -> list:
    """Where a runtime entry of ``target`` measures: each device serving the target, else this host (None)."""
    serving = [d for d in devices if target in d.config.targets]
    return serving or [None]


def harness_kwargs(
    artifact: Artifact,
    rs: RuntimeSpec,
    threads: int,
    x: np.ndarray | None,
    harness: HarnessOptions,
    trust_model: bool,
) -> dict[str, Any]:
    """``harness.measure``'s (and ``Device.measure``'s) keyword arguments for one measurement."""
    return {
        "threads": threads,
        "device": rs.device,
        "precision": rs.precision,
        "file_precision": artifact.precision,
        "default_batch": 1,
        "data": x,
        "options": harness,
        "trust_model": trust_model,
    }


def record_of(result, artifact: Artifact, rs: RuntimeSpec, threads: int, task: str | None, note: str) -> Measurement:
    """The record of one harness result."""
    return build_record(
        artifact=artifact.summary(),
        runtime=rs.runtime,
        device=rs.device,
        threads=threads,
        size_bytes=artifact.manifest["size_bytes"],
        result=result,
        task=task,
        note=note,
        precision=rs.precision,
    )


def measure_one(
    artifact: Artifact,
    rs: RuntimeSpec,
    threads: int,
    *,
    x: np.ndarray | None = None,
    harness: HarnessOptions = HarnessOptions(),
    task: str | None = None,
    note: str | None = None,
    place=None,
    trust_model: bool = False,
) -> Measured:
    """``artifact`` on runtime entry ``rs`` at ``threads``, on ``place`` (a ``Device``; None: this host).

    ``note`` defaults to the entry's own (e.g. "host proxy: no EdgeTPU on this machine"); a
    real device drops the host-proxy note, since it is not measured on this host.
    """
    kwargs = harness_kwargs(artifact, rs, threads, x, harness, trust_model)
    result = (place.measure if place is not None else measure)(artifact.model_path, rs.runtime, **kwargs)
    return _measured(result, artifact, rs, threads, task, _note(rs, note, place))


def measure_places(
    artifact: Artifact,
    rs: RuntimeSpec,
    threads: int,
    places: list,
    *,
    x: np.ndarray | None = None,
    harness: HarnessOptions = HarnessOptions(),
    task: str | None = None,
    trust_model: bool = False,
    ray_engine=None,
) -> list[Measured]:
    """``artifact`` on ``rs`` at ``threads`` on each of ``places`` (``places_for``), in their order.

    Under the Ray engine the devices measure at once, each on its own actor; this host (None)
    and every device without an engine measure one after another.
    """
    kwargs = harness_kwargs(artifact, rs, threads, x, harness, trust_model)
    remote = [i for i, p in enumerate(places) if ray_engine is not None and p is not None]
    jobs = [(places[i].name, artifact.model_path, rs.runtime, kwargs) for i in remote]
    results = dict(zip(remote, ray_engine.measure_many(jobs) if jobs else [], strict=True))
    out = []
    for i, place in enumerate(places):
        if i not in results:
            results[i] = (place.measure if place is not None else measure)(artifact.model_path, rs.runtime, **kwargs)
        out.append(_measured(results[i], artifact, rs, threads, task, _note(rs, None, place)))
    return out


def measure_first(
    artifact: Artifact,
    profile: TargetProfile,
    *,
    x: np.ndarray | None = None,
    harness: HarnessOptions = HarnessOptions(),
    task: str | None = None,
    threads: int | None = None,
    trust_model: bool = False,
) -> tuple[Measured | None, list[str]]:
    """``artifact`` on the first entry of ``profile`` that reads its format and measures it here.

    Entries are tried in the profile's order (the EdgeTPU delegate first, then its labelled
    host proxy); one that is skipped or fails gives way to the next. A Keras file that no entry
    reads is measured on the Keras reference runtime. Returns the first ``ok`` measurement (or
    the last one tried when none is ok; None when no entry reads the file) and, for each entry
    that gave way, why: ``runtime/device: reason``.
    """
    entries = entries_for(profile, artifact.format)
    if not entries and artifact.format == "keras":
        entries = [KERAS_REFERENCE]
    threads = profile.threads[0] if threads is None else threads
    last, reasons = None, []
    for rs in entries:
        last = measure_one(artifact, rs, threads, x=x, harness=harness, task=task, trust_model=trust_model)
        if last.record.status == "ok":
            return last, reasons
        reasons.append(f"{rs.runtime}/{rs.device}: {last.record.error}")
    return last, reasons


def _note(rs: RuntimeSpec, note: str | None, place) -> str:
    note = rs.note if note is None else note
    return note if place is None or place.config.transport == "local" else ""


def _measured(result, artifact: Artifact, rs: RuntimeSpec, threads: int, task: str | None, note: str) -> Measured:
    outputs = result.predictions if result.status == "ok" else None
    return Measured(record_of(result, artifact, rs, threads, task, note), outputs)
