"""One measurement in a fresh process: `python -m benchmarks.worker '<json job>'` prints one JSON line.

A fresh process per artifact and thread count, so that cold start is real (imports, load, first run) and
one runtime's crash, leak or thread pool cannot touch another's figures. An artifact job's record is opened
through its Format's runtime without loading torch, so an ONNX or TFLite worker's cold start and memory are
the runtime's own (ExecuTorch's Python runtime takes torch tensors, so its worker loads torch). A torch job
rebuilds the reference from the manifest with the one function check and size use.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

from edgeport.exporters.formats import open_runtime
from edgeport.models.samples import random_input
from edgeport.models.spec import TensorContract
from edgeport.parity_tests.manifest import read_manifest
from edgeport.parity_tests.reference import rebuild_reference
from edgeport.runtimes.artifact import ArtifactRecord


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def _peak_rss_mb() -> float:
    """The high-water mark of this process's own memory. Not getrusage's ru_maxrss: Linux carries that across
    exec from the parent (the CLI, with torch loaded), so every worker would report the parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024


def _inputs(contracts: list[Any]) -> dict[str, Any]:
    """Seeded uniform noise over each input's contract range, at the exported shape."""
    return {c.name: random_input(c, 0) for c in contracts}


def _artifact_runner(job: dict[str, Any]) -> tuple[Callable, str, list[Any]]:
    """job: the artifact's record and folder, and its input contracts (as the manifest or a peak probe has them)."""
    runtime = open_runtime(ArtifactRecord.from_dict(job["record"]), Path(job["dir"]), job["threads"])
    return runtime.run, runtime.engine, [TensorContract.from_dict(c) for c in job["inputs"]]


def _torch_runner(job: dict[str, Any]) -> tuple[Callable, str, list[Any]]:
    import torch

    torch.set_num_threads(job["threads"])
    manifest = read_manifest(Path(job["manifest"]))
    memory_format = job.get("memory_format", "contiguous")
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    module = rebuild_reference(manifest).module.to(memory_format=fmt)
    names = [c.name for c in manifest.inputs]

    def run(inputs: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return module(*[torch.from_numpy(inputs[n]).contiguous(memory_format=fmt) if inputs[n].ndim == 4
                            else torch.from_numpy(inputs[n]) for n in names])
    return run, f"PyTorch {torch.__version__} eager ({memory_format}, {job['threads']} threads)", list(manifest.inputs)


def measure(job: dict[str, Any]) -> dict[str, Any]:
    rss_start = _rss_now_mb()
    t0 = time.perf_counter()
    run, engine, contracts = (_torch_runner if job["kind"] == "torch" else _artifact_runner)(job)
    loaded = time.perf_counter()
    inputs = _inputs(contracts)
    run(inputs)
    first = time.perf_counter()
    for _ in range(job["warmup"]):
        run(inputs)
    times = []
    for _ in range(job["runs"]):
        t = time.perf_counter()
        run(inputs)
        times.append((time.perf_counter() - t) * 1000)
    peak = _peak_rss_mb()
    return {"engine": engine, "load_ms": (loaded - t0) * 1000, "first_run_ms": (first - loaded) * 1000,
            "cold_start_ms": (first - STARTED) * 1000, "times_ms": times, "rss_start_mb": rss_start,
            "peak_rss_mb": peak, "model_rss_mb": peak - rss_start, "torch_in_process": "torch" in sys.modules}


def main() -> None:
    job = json.loads(sys.argv[1])
    try:
        result = {"ok": True, **measure(job)}
    except Exception as exc:  # reported as this artifact's failure; the parent carries on with the rest
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
