"""One measurement in a fresh process: `python -m benchmarks.worker '<json job>'` prints one JSON line.

A fresh process per artifact and thread count, so that cold start is real (imports, load, first run) and
one runtime's crash, leak or thread pool cannot touch another's figures.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def _peak_rss_mb() -> float:
    """The high-water mark of this process's own memory. Not getrusage's ru_maxrss: Linux carries that across
    exec from the parent (the CLI, with torch loaded), so every worker would report the parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024


def _inputs(manifest: dict[str, Any]) -> dict[str, Any]:
    """Like models.samples.random_input, which cannot be imported here: importing models loads torch, and
    an ONNX or TFLite worker must stay torch-free for its cold start and memory to be the runtime's own."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for c in manifest["contract"]["inputs"]:
        lo, hi = (0.0 if v is None else v for v in c["value_range"])
        out[c["name"]] = rng.uniform(lo, hi if hi > lo else lo + 1, size=c["shape"]).astype(np.float32)
    return out


def _artifact_runner(manifest: dict[str, Any], folder: Path, threads: int) -> tuple[Callable, str]:
    from exporters.base import ArtifactRecord
    from parity_tests.runtimes import open_runtime

    record = ArtifactRecord.from_dict(manifest["artifact"])
    runtime = open_runtime(record, folder, threads)
    return runtime.run, runtime.engine


def _torch_runner(manifest: dict[str, Any], threads: int, memory_format: str) -> tuple[Callable, str]:
    import torch

    from models import get_spec
    from models.source import ModelSource, instantiate
    from models.spec import TensorContract

    torch.set_num_threads(threads)
    contracts = tuple(TensorContract(c["name"], tuple(c["shape"])) for c in manifest["contract"]["inputs"])
    source = ModelSource.from_dict(manifest["source"])
    spec = get_spec(source.model, [c.shape for c in contracts])
    module = instantiate(spec, source, contracts)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    module = module.to(memory_format=fmt)
    names = [c.name for c in contracts]

    def run(inputs: dict[str, Any]) -> Any:
        with torch.inference_mode():
            args = [torch.from_numpy(inputs[n]).contiguous(memory_format=fmt) if inputs[n].ndim == 4
                    else torch.from_numpy(inputs[n]) for n in names]
            return module(*args)
    return run, f"PyTorch {torch.__version__} eager ({memory_format}, {threads} threads)"


def measure(job: dict[str, Any]) -> dict[str, Any]:
    manifest_path = Path(job["manifest"])
    manifest = json.loads(manifest_path.read_text())
    rss_start = _rss_now_mb()
    t0 = time.perf_counter()
    if job["kind"] == "torch":
        run, engine = _torch_runner(manifest, job["threads"], job.get("memory_format", "contiguous"))
    else:
        run, engine = _artifact_runner(manifest, manifest_path.parent, job["threads"])
    loaded = time.perf_counter()
    inputs = _inputs(manifest)
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
            "peak_rss_mb": peak, "model_rss_mb": peak - rss_start,
            "torch_in_process": "torch" in sys.modules}


def main() -> None:
    job = json.loads(sys.argv[1])
    try:
        result = {"ok": True, **measure(job)}
    except Exception as exc:  # reported as this artifact's failure; the parent carries on with the rest
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
