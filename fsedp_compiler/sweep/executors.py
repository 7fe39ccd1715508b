"""Where points run: a local process pool (default) or Ray tasks on a cluster, same results either way.

Each executor takes the points to run and yields `(point, result)` as points finish, in any order;
the caller appends each to the store at once. At most one point per worker is in flight, so a
worker that dies (out of memory, a lost node) takes at most its own point with it: that point is
recorded as crashed and the sweep goes on. On Ctrl-C (KeyboardInterrupt in the caller) the workers
are stopped and what is finished stays in the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from fsedp_compiler.errors import FsedpError
from fsedp_compiler.sweep.points import Point
from fsedp_compiler.sweep.worker import crash_result, run_point

Result = tuple[Point, dict[str, Any]]


def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_inline(points: list[Point]) -> Iterator[Result]:
    """One point after the other in this process (`--jobs 1`: simplest to debug)."""
    for point in points:
        yield point, run_point(point)


def _quiet_worker() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them (no traceback from every worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(points: list[Point], jobs: int) -> Iterator[Result]:
    """A pool of `jobs` processes (spawned: the same start on every OS, no state inherited)."""
    if jobs <= 1 or len(points) <= 1:
        yield from run_inline(points)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    todo = list(reversed(points))
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_quiet_worker)
    running: dict[Future, Point] = {}
    finished = False
    try:
        while todo or running:
            while todo and len(running) < jobs:
                point = todo.pop()
                running[pool.submit(run_point, point)] = point
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                point = running.pop(future)
                try:
                    yield point, future.result()
                except BrokenProcessPool:
                    broken = True
                    yield point, crash_result("the worker process died (out of memory or killed?)")
            if broken:  # every point in flight is lost with the pool; start a new one for the rest
                for future, point in running.items():
                    yield point, crash_result("the worker pool broke while this point ran")
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_quiet_worker)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop(pool)


def _stop(pool: Any) -> None:
    """Stop the pool now (Ctrl-C): cancel what is queued, end the workers still running a point. The
    pool's own thread reaps them (joining them here too races with it on their file descriptors)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        return
    workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        try:
            if process.is_alive():
                process.terminate()
        except (OSError, ValueError):  # already reaped and closed by the pool's thread
            pass


def run_ray(points: list[Point], jobs: int | None, address: str | None) -> Iterator[Result]:
    """Ray tasks, one per point: on the cluster at `address` (`auto`: the one started on this machine
    with `ray start --head`), else on a Ray instance started here with `jobs` CPUs."""
    try:
        import ray
    except ImportError:
        raise FsedpError("the Ray executor needs Ray: pip install 'fsedp-compiler[ray]'", field="--executor") from None
    import logging

    started = not ray.is_initialized()
    if started:
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:  # a running cluster (`auto`, HOST:PORT) or Ray Client (ray://HOST:10001)
                ray.init(address=address, **quiet)
            else:
                ray.init(address="local", num_cpus=jobs or default_jobs(), include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            what = f"reach the Ray cluster at {address}" if address else "start a local Ray instance"
            raise FsedpError(f"cannot {what}: {err}", field="--address" if address else "--executor") from None
    task = ray.remote(num_cpus=1, max_retries=1)(run_point)
    window = max(1, int(ray.cluster_resources().get("CPU", 1)))
    todo = list(reversed(points))
    running: dict[Any, Point] = {}
    try:
        while todo or running:
            while todo and len(running) < window:
                point = todo.pop()
                running[task.remote(point)] = point
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                point = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker or its node died; the task's error
                    result = crash_result(f"Ray: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
                yield point, result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
