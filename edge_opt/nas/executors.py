"""Where the search's trials are trained and deployed: one small contract, three engines.

The split is MLPerf LoadGen's: the CPU work of a trial (training it briefly, running the target's
pipeline on it) is the executor's, and it may run several trials at once; every measurement stays
in the search's own process, one at a time, after the batch's training has ended, so no trial is
timed while another one trains. An executor only maps a module-level function over picklable
items and returns the results in order:

* ``LocalExecutor``: in this process, one after another (the default).
* ``ProcessExecutor``: ``workers`` local processes (spawned, since TensorFlow does not survive a
  fork), each with its share of the cores.
* ``RayExecutor``: each item a Ray task with ``num_cpus`` CPUs (``edge-opt run --engine ray``);
  it works in a folder of its own on its node and its results carry the files they made, so the
  cluster's nodes need not share a file system.

``check_executor`` is the contract's conformance suite: every executor runs through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from edge_opt.measure.ray_engine import require_ray


class TrialExecutor(Protocol):
    """Runs ``fn`` on every item, at most ``workers`` at a time; results in the order of the items.

    ``fn`` is a module-level function and the items pickle. An item whose worker died gives a
    ``WorkerLost`` in its place (the others' results are kept); an exception ``fn`` raised is
    raised again here. ``name`` is what a trial's record says trained it.
    """

    name: str
    workers: int

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]: ...

    def close(self) -> None: ...


class WorkerLost:
    """An item's place in ``map``'s results when the process or node working on it died."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"WorkerLost({self.reason!r})"


def where() -> dict[str, Any]:
    """What a worker says about itself: its process id (and Ray node, under Ray)."""
    return {"pid": os.getpid(), "node": os.environ.get("EDGE_OPT_RAY_NODE")}


class LocalExecutor:
    name = "local"
    workers = 1

    def map(self, fn, items):
        return [fn(item) for item in items]

    def close(self) -> None:
        return None


def _share_cores(threads: int) -> None:
    """A spawned worker's initializer: its share of the cores for TensorFlow and BLAS."""
    for key in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class ProcessExecutor:
    """``workers`` local processes, started on first use and kept for the whole search."""

    name = "process"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self._pool = None

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_share_cores,
            initargs=(threads,),
        )
        return self._pool

    def map(self, fn, items):
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool or self._start()
        futures = [pool.submit(fn, item) for item in items]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except BrokenProcessPool as exc:
                self._pool = None  # a fresh pool for the next batch
                results.append(WorkerLost(f"a trial's worker process died ({str(exc) or 'BrokenProcessPool'})"))
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ray_call(fn, item):
    """A Ray task's body: ``fn(item)`` with the node's id in the environment (``where()`` reads it)."""
    import ray

    os.environ["EDGE_OPT_RAY_NODE"] = ray.get_runtime_context().get_node_id()
    return fn(item)


class RayExecutor:
    """Each item a Ray task needing ``num_cpus`` CPUs, on the cluster Ray is connected to."""

    name = "ray"

    def __init__(self, workers: int, num_cpus: float = 1) -> None:
        self.ray = require_ray()
        if not self.ray.is_initialized():
            raise RuntimeError("RayExecutor needs a connected Ray (ray.init) first")
        self.workers = workers
        self._remote = self.ray.remote(num_cpus=num_cpus, max_retries=0)(_ray_call)

    def map(self, fn, items):
        from ray.exceptions import NodeDiedError, RayTaskError, WorkerCrashedError

        refs = [self._remote.remote(fn, item) for item in items]
        results = []
        for ref in refs:
            try:
                results.append(self.ray.get(ref))
            except RayTaskError as exc:  # fn raised: raise it here, as the other executors do
                raise exc.as_instanceof_cause() from None
            except (WorkerCrashedError, NodeDiedError) as exc:
                results.append(WorkerLost(f"a trial's Ray worker died ({str(exc).strip().splitlines()[0][:200]})"))
        return results

    def close(self) -> None:
        return None


def make_executor(parallel: int, engine: str = "local") -> TrialExecutor:
    """The executor a search runs its trials on: ``parallel`` at a time, locally or as Ray tasks."""
    if engine == "ray":
        return RayExecutor(parallel)
    return ProcessExecutor(parallel) if parallel > 1 else LocalExecutor()


# -- the contract's conformance suite ---------------------------------------------------------
def _square(x: int) -> tuple[int, dict]:
    return x * x, where()


def _boom(x: int):
    raise ValueError(f"item {x} is bad")


def check_executor(executor: TrialExecutor) -> None:
    """What every executor must do (raises AssertionError on the first broken rule)."""
    assert isinstance(executor.name, str) and executor.name, "an executor names itself"
    assert isinstance(executor.workers, int) and executor.workers >= 1, "workers is a positive int"
    items = list(range(5))
    out = executor.map(_square, items)
    assert [r[0] for r in out] == [x * x for x in items], "results come back in the order of the items"
    assert all(isinstance(r[1]["pid"], int) for r in out), "the work ran somewhere that says where"
    assert executor.map(_square, []) == [], "an empty batch is an empty list"
    try:
        executor.map(_boom, [1])
    except ValueError as exc:
        assert "item 1 is bad" in str(exc), "the function's own exception comes back"
    else:
        raise AssertionError("an exception the function raised is raised again by map")
    again = executor.map(_square, [7])  # still usable after an item raised
    assert again[0][0] == 49, "the executor survives a raising item"
