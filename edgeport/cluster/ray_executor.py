"""The export matrix (edgeport/cluster/matrix.py) on Ray: a local Ray by default, a running cluster by address.

Each model x format x recipe is one Ray task. A task whose worker process dies is retried (Ray's
max_retries); an error inside a task is that row's result, and the others go on. A format's recipe tasks are
submitted when its fp32 task has finished, with that artifact, so each row is compared with the same fp32
artifact as in the serial run. An actor counts each task's attempts, so the summary says which were retried.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from edgeport.benchmarks.latency import BenchPlan, run_bench
from edgeport.benchmarks.machine import check_load
from edgeport.cluster.matrix import Fp32Artifact, MatrixTask, TaskResult, failed_result, run_task
from edgeport.cluster.store import OutputStore
from edgeport.exporters.base import short_message

if TYPE_CHECKING:
    from ray.actor import ActorHandle


RETRIES = 3    # attempts after the first when a task's worker dies


def _task_body(task: MatrixTask, store: OutputStore, fp32: Fp32Artifact | None, attempts: ActorHandle) -> TaskResult:
    import ray

    ray.get(attempts.started.remote(task.key, os.getpid()))
    started = time.perf_counter()
    try:
        return run_task(task, store, fp32)
    except Exception as exc:  # noqa: BLE001  (one task's failure is its row, never the run's)
        return failed_result(task, f"{type(exc).__name__}: {short_message(exc)}", time.perf_counter() - started)


class _Attempts:
    """Which process started each task, in order: more than one means its worker died and Ray retried it."""
    def __init__(self) -> None:
        self.seen: dict[str, list[int]] = {}

    def started(self, key: str, pid: int) -> None:
        self.seen.setdefault(key, []).append(pid)

    def all(self) -> dict[str, list[int]]:
        return self.seen


def start_ray(address: str | None, workers: int | None, resources: dict[str, float] | None = None) -> bool:
    """Connect to a cluster (address) or start a local Ray; True when this call started it (so it stops it)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), resources=resources, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
    return True


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None, resources: dict[str, float] | None = None) -> Iterator:
    """Ray for one command: started (and stopped) here unless already running; Ray's own messages (a dead
    worker's notice) go to stderr, as stdout is for --json."""
    import ray

    with contextlib.redirect_stdout(sys.stderr):
        started_here = start_ray(address, workers, resources)
        try:
            yield ray
        finally:
            if started_here:
                ray.shutdown()


def run_on_ray(tasks: list[MatrixTask], store: OutputStore, address: str | None = None, workers: int | None = None,
               say: Callable[[str], None] = lambda _: None) -> tuple[dict[str, TaskResult], dict[str, list[int]]]:
    """Every task's result (failed rows included) and each task's attempts (worker pids)."""
    with ray_session(address, workers) as ray:
        attempts = ray.remote(num_cpus=0)(_Attempts).remote()
        remote = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(_task_body)
        fp32_first = {(t.model, t.format) for t in tasks if t.recipe == "fp32"}
        waiting = {k: [t for t in tasks if (t.model, t.format) == k and t.recipe != "fp32"] for k in fp32_first}
        pending: dict[Any, MatrixTask] = {}
        for t in tasks:
            if t.recipe == "fp32" or (t.model, t.format) not in fp32_first:
                pending[remote.remote(t, store, None, attempts)] = t
        results: dict[str, TaskResult] = {}
        began = time.perf_counter()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001  (retries used up: the worker kept dying)
                result = failed_result(task, f"worker lost after {RETRIES + 1} attempts: {type(exc).__name__}")
            results[task.key] = result
            if task.recipe == "fp32":
                shared = ray.put(result.fp32)
                for follower in waiting.pop((task.model, task.format), []):
                    pending[remote.remote(follower, store, shared, attempts)] = follower
            say(f"[{len(results)}/{len(tasks)}] {task.key}: {result.row.status} in {result.seconds:.1f} s "
                f"({time.perf_counter() - began:.0f} s elapsed)")
        return results, ray.get(attempts.all.remote())


BENCH_SLOT = "edgeport_bench"   # a custom resource each node has one of (local Ray: set here; cluster: ray start)


def _bench_body(plan: BenchPlan) -> dict[str, Any]:
    import socket

    began = time.time()
    data = run_bench(plan, check_load()).to_dict()
    return {**data, "node": socket.gethostname(), "window": [round(began, 3), round(time.time(), 3)]}


def bench_tasks(plans: list[BenchPlan], address: str | None, workers: int | None,
                say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each plan's bench run, in plan order; a task whose worker dies is retried."""
    with ray_session(address, workers, {BENCH_SLOT: 1}) as ray:
        remote = ray.remote(num_cpus=0, resources={BENCH_SLOT: 1}, max_retries=RETRIES)(_bench_body)
        refs = {remote.remote(p): p for p in plans}
        runs: dict[Any, dict[str, Any]] = {}
        while len(runs) < len(refs):
            done, _ = ray.wait([r for r in refs if r not in runs], num_returns=1)
            runs[done[0]] = ray.get(done[0])
            say(f"[{len(runs)}/{len(refs)}] bench {refs[done[0]].root.name} on {runs[done[0]]['node']}")
        return [runs[r] for r in refs]
