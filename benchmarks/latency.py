"""`edgeport bench`: every artifact in its runtime, beside PyTorch eager on the same input, one process each.

A format that cannot be timed here says why (Core ML needs macOS: the MIL evaluator is a parity tool, never a
latency). Figures are medians of one run on one machine; each runtime's own kernel peak is measured in the
same run (benchmarks/peaks.py), so efficiency and ratios to the torch baseline compare across machines.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from edgeport.benchmarks.machine import describe_machine
from edgeport.benchmarks.peaks import measure_peaks, torch_fp32_peak
from edgeport.exporters.formats import get_format
from edgeport.parity_tests.manifest import find_manifests, read_manifest
from edgeport.quantize.recipes import parse_recipe

if TYPE_CHECKING:
    from edgeport.benchmarks.machine import LoadCheck
    from edgeport.benchmarks.peaks import KernelPeak
    from edgeport.parity_tests.manifest import Manifest

BENCH_SCHEMA = "edgeport.bench/2"
READABLE_BENCH = ("edgeport.bench/1", BENCH_SCHEMA)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stats:
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> "Stats":
        t = np.asarray(times_ms, dtype=np.float64)
        return cls(float(t.min()), *(float(np.percentile(t, q)) for q in (50, 90, 99)), len(t))

    def to_dict(self) -> dict[str, Any]:
        return {"min_ms": round(self.min_ms, 3), "p50_ms": round(self.p50_ms, 3), "p90_ms": round(self.p90_ms, 3),
                "p99_ms": round(self.p99_ms, 3), "runs": self.runs}


@dataclass(frozen=True)
class BenchRow:
    """One artifact (or the torch baseline) at one thread count. status: ok, unavailable or failed."""
    model: str
    format: str          # a format's name, or torch
    recipe: str          # the artifact's recipe; for torch: contiguous / channels_last
    threads: int
    status: str
    int8: bool = False
    engine: str = ""
    macs: int = 0
    stats: Stats | None = None
    cold_start_ms: float | None = None
    load_ms: float | None = None
    peak_rss_mb: float | None = None      # the whole worker process
    model_rss_mb: float | None = None     # what loading and running the artifact added
    bytes: int = 0
    path: str = ""
    message: str = ""
    gmacs_per_s: float | None = None
    efficiency: float | None = None          # achieved ops / the runtime's own kernel peak for that arithmetic
    peak_kind: str = ""
    vs_torch: float | None = None            # p50 / torch eager contiguous p50, same model and threads

    @property
    def key(self) -> str:
        return f"{self.model}/{self.format}-{self.recipe}@{self.threads}"

    def to_dict(self) -> dict[str, Any]:
        r = lambda v, n=2: None if v is None else round(v, n)  # noqa: E731
        return {"key": self.key, "model": self.model, "format": self.format, "recipe": self.recipe,
                "threads": self.threads, "status": self.status, "engine": self.engine, "macs": self.macs,
                "latency": self.stats.to_dict() if self.stats else None, "cold_start_ms": r(self.cold_start_ms, 1),
                "load_ms": r(self.load_ms, 1), "peak_rss_mb": r(self.peak_rss_mb, 1),
                "model_rss_mb": r(self.model_rss_mb, 1), "bytes": self.bytes,
                "gmacs_per_s": r(self.gmacs_per_s, 1), "efficiency": r(self.efficiency, 4),
                "efficiency_against": self.peak_kind, "p50_vs_torch": r(self.vs_torch, 4), "path": self.path,
                "message": self.message}


@dataclass(frozen=True)
class BenchPlan:
    root: Path
    threads: tuple[int, ...] = (1, 2)
    runs: int = 20
    warmup: int = 3
    torch_baseline: bool = True
    measure_peaks: bool = True
    peak_probes: tuple[tuple[int, int], ...] = ()    # (channels, size) of the peak probes; () for the default
    # PyTorch eager's p50 swung 1.5x between fresh processes on this machine (195 / 235 / 325 ms for one
    # model, 2 threads, contiguous) while each artifact's stayed within 4%: the baseline is measured in this
    # many processes and the fastest kept, so every ratio is against torch at its best.
    baseline_processes: int = 3


@dataclass(frozen=True)
class BenchRun:
    rows: list[BenchRow]
    machine: dict[str, Any]
    peaks: list[KernelPeak]
    peak_problems: list[str]
    load: LoadCheck
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BENCH_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": self.machine, "load_check": self.load.to_dict(),
                "peaks": [p.to_dict() for p in self.peaks], "peak_problems": self.peak_problems,
                "settings": self.settings, "rows": [r.to_dict() for r in self.rows]}


def run_worker(job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(job["threads"])}
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeport.benchmarks.worker", json.dumps(job)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"ok": False, "error": f"worker exited {proc.returncode} without a result: {tail[:250]}"}
    return json.loads(line)


def measured(row: BenchRow, result: dict[str, Any]) -> BenchRow:
    """The row with one worker's figures, or its failure."""
    if not result.get("ok"):
        return replace(row, status="failed", message=result.get("error", "unknown error"))
    return replace(row, status="ok", engine=result["engine"], stats=Stats.of(result["times_ms"]),
                   cold_start_ms=result["cold_start_ms"] if row.format != "torch" else None, load_ms=result["load_ms"],
                   peak_rss_mb=result["peak_rss_mb"], model_rss_mb=result["model_rss_mb"])


def _artifact_rows(path: Path, manifest: Manifest, plan: BenchPlan, progress: Callable[[str], None]) -> list[BenchRow]:
    fmt = get_format(manifest.artifact.format)
    unavailable = fmt.latency_unavailable()
    rows = []
    for threads in plan.threads:
        row = BenchRow(manifest.model.name, fmt.name, manifest.recipe.name, threads, "unavailable",
                       int8=parse_recipe(manifest.recipe.name).int8, macs=manifest.model.macs,
                       bytes=manifest.artifact.total_bytes, path=str(path.parent), message=unavailable)
        if not unavailable:
            progress(f"{row.model} {row.format} {row.recipe} @{threads} threads")
            row = measured(row, run_worker({"kind": "artifact", "record": manifest.artifact.to_dict(),
                                            "dir": str(path.parent), "inputs": [c.to_dict() for c in manifest.inputs],
                                            "threads": threads, "runs": plan.runs, "warmup": plan.warmup}))
        rows.append(row)
    return rows


def _torch_rows(path: Path, manifest: Manifest, plan: BenchPlan, progress: Callable[[str], None]) -> list[BenchRow]:
    rows = []
    for memory_format in ("contiguous", "channels_last"):
        for threads in plan.threads:
            progress(f"{manifest.model.name} torch eager {memory_format} @{threads} threads")
            job = {"kind": "torch", "manifest": str(path), "threads": threads, "runs": plan.runs,
                   "warmup": plan.warmup, "memory_format": memory_format}
            row = BenchRow(manifest.model.name, "torch", memory_format, threads, "failed", macs=manifest.model.macs)
            rows.append(_best_of(row, [run_worker(job) for _ in range(max(1, plan.baseline_processes))]))
    return rows


def _best_of(row: BenchRow, results: list[dict[str, Any]]) -> BenchRow:
    """The process with the lowest p50; every process's p50 is kept in the message, so the spread shows."""
    done = [r for r in results if r.get("ok")]
    if not done:
        return measured(row, results[0])
    best = min(done, key=lambda r: float(np.median(r["times_ms"])))
    spread = ", ".join(f"{float(np.median(r['times_ms'])):.1f}" for r in done)
    return replace(measured(row, best), message=f"fastest of {len(done)} processes (p50 ms: {spread})")


def run_bench(plan: BenchPlan, load: LoadCheck, progress: Callable[[str], None] = lambda _: None) -> BenchRun:
    targets = [(p, read_manifest(p)) for p in find_manifests(Path(plan.root))]
    if not targets:
        raise FileNotFoundError(f"no manifest.json under {plan.root}: export something first (`edgeport export`)")
    present = tuple({m.artifact.format for _, m in targets})
    peaks, problems = measure_peaks(plan.threads, run_worker, progress, plan.peak_probes, present) \
        if plan.measure_peaks else ([], [])
    if plan.measure_peaks and plan.torch_baseline:
        peaks += [torch_fp32_peak(t) for t in plan.threads]
    rows = [row for path, m in targets for row in _artifact_rows(path, m, plan, progress)]
    baselines: dict[str, tuple[Path, Any]] = {}
    for path, m in targets:
        if not m.recipe.rewrites_module:    # the torch baseline is the model as exported, unpruned
            baselines.setdefault(m.model.name, (path, m))
    if plan.torch_baseline:
        rows += [row for path, m in baselines.values() for row in _torch_rows(path, m, plan, progress)]
    settings = {"threads": list(plan.threads), "runs": plan.runs, "warmup": plan.warmup,
                "torch_baseline_processes": plan.baseline_processes,
                "inputs": "seeded uniform noise over each input's contract range, at the exported shape"}
    return BenchRun(derive(rows, peaks), describe_machine(), peaks, problems, load, settings)


def derive(rows: list[BenchRow], peaks: list[KernelPeak]) -> list[BenchRow]:
    """Throughput, efficiency against the runtime's own kernel peak, and the ratio to torch eager (contiguous).
    An efficiency above 100% means the peak probe missed this runtime's best kernels: it is not printed."""
    torch_p50 = {(r.model, r.threads): r.stats.p50_ms for r in rows
                 if r.format == "torch" and r.recipe == "contiguous" and r.stats}
    by_key = {(p.format, p.arithmetic, p.threads): p for p in peaks}
    out = []
    for r in rows:
        if not r.stats:
            out.append(r)
            continue
        gmacs = r.macs / (r.stats.p50_ms / 1000) / 1e9
        peak = by_key.get((r.format, "int8" if r.int8 else "fp32", r.threads))
        efficiency, kind, note = None, "", r.message
        if peak is not None:
            kind = f"{peak.format} {peak.arithmetic} kernel peak ({peak.gops:.0f} GOP/s)"
            efficiency = 2 * gmacs / peak.gops
            if efficiency > 1.0:
                note = "; ".join(filter(None, [note, f"runs at {efficiency:.0%} of the measured {kind}: the peak "
                                                      "probe is unreliable for this runtime, no efficiency given"]))
                efficiency = None
        base = torch_p50.get((r.model, r.threads))
        out.append(replace(r, gmacs_per_s=gmacs, efficiency=efficiency, peak_kind=kind, message=note,
                           vs_torch=r.stats.p50_ms / base if base else None))
    return out


# ---- regression gate ----

@dataclass(frozen=True)
class Regression:
    key: str
    before: float     # p50 / torch p50 in the baseline file
    after: float
    change: float     # after / before - 1

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "baseline_ratio": round(self.before, 4), "ratio": round(self.after, 4),
                "change": round(self.change, 4)}


def compare(baseline: dict[str, Any], current: dict[str, Any], max_regression: float) -> tuple[list[Regression], list[Regression]]:
    """(every compared artifact, those past the threshold). Each p50 is taken as a ratio to the torch
    baseline measured in its own run, so machine drift cancels; a row missing on either side is skipped."""
    if baseline.get("schema") not in READABLE_BENCH:
        raise ValueError(f"baseline is not an edgeport bench file (schema {baseline.get('schema')!r})")
    before = {r["key"]: r["p50_vs_torch"] for r in baseline["rows"] if r.get("p50_vs_torch") and r["format"] != "torch"}
    compared = [Regression(r["key"], before[r["key"]], r["p50_vs_torch"], r["p50_vs_torch"] / before[r["key"]] - 1)
                for r in current["rows"] if r.get("p50_vs_torch") and r["key"] in before and r["format"] != "torch"]
    return compared, [c for c in compared if c.change > max_regression]
