"""`edgeport bench`: every artifact in its runtime, beside PyTorch eager on the same input, one process each.

Core ML latency needs Apple's runtime: on Linux its rows say "needs macOS" (the MIL evaluator is a parity
tool, never a latency). Figures are medians of one run on one machine; the machine's own GEMM peak is
measured in the same run, so efficiency and ratios to the torch baseline compare across machines.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

BENCH_SCHEMA = "edgeport.bench/1"
ROOT = Path(__file__).resolve().parents[1]
INT8_RECIPES = ("w8", "w8a8")


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


@dataclass
class BenchRow:
    """One artifact (or the torch baseline) at one thread count. status: ok, needs-macos or failed."""

    model: str
    format: str          # onnx, tflite, coreml, or torch
    recipe: str          # the artifact's recipe; for torch: contiguous / channels_last
    threads: int
    status: str
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
    efficiency: float | None = None          # achieved ops / the machine's peak for that arithmetic
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


@dataclass
class BenchPlan:
    root: Path
    threads: tuple[int, ...] = (1, 2)
    runs: int = 20
    warmup: int = 3
    torch_baseline: bool = True
    # PyTorch eager's p50 swung 1.5x between fresh processes on this machine (195 / 235 / 325 ms for one
    # model, 2 threads, contiguous) while each artifact's stayed within 4%: the baseline is measured in this
    # many processes and the fastest kept, so every ratio is against torch at its best.
    baseline_processes: int = 3


@dataclass
class BenchRun:
    rows: list[BenchRow]
    machine: dict[str, Any]
    peaks: dict[int, Any]
    load: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BENCH_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": self.machine, "load_check": self.load.to_dict(),
                "peak": {str(t): p.to_dict() for t, p in self.peaks.items()}, "settings": self.settings,
                "rows": [r.to_dict() for r in self.rows]}


def run_worker(job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(job["threads"])}
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(job)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"ok": False, "error": f"worker exited {proc.returncode} without a result: {tail[:250]}"}
    return json.loads(line)


def _fill(row: BenchRow, result: dict[str, Any]) -> BenchRow:
    if not result.get("ok"):
        row.status, row.message = "failed", result.get("error", "unknown error")
        return row
    row.status, row.engine = "ok", result["engine"]
    row.stats = Stats.of(result["times_ms"])
    row.cold_start_ms = result["cold_start_ms"] if row.format != "torch" else None
    row.load_ms, row.peak_rss_mb, row.model_rss_mb = result["load_ms"], result["peak_rss_mb"], result["model_rss_mb"]
    return row


def collect_targets(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    from parity_tests.gate import find_manifests

    return [(p, json.loads(p.read_text())) for p in find_manifests(Path(root))]


def run_bench(plan: BenchPlan, load: Any, progress: Callable[[str], None] = lambda _: None) -> BenchRun:
    from benchmarks.machine import describe_machine, measure_peak

    targets = collect_targets(plan.root)
    if not targets:
        raise FileNotFoundError(f"no manifest.json under {plan.root}: export something first (`edgeport export`)")
    peaks = {t: measure_peak(t) for t in plan.threads}
    rows: list[BenchRow] = []
    baselines: dict[str, Path] = {}
    for path, manifest in targets:
        model = manifest["model"]["name"]
        recipe = (manifest.get("recipe") or {}).get("name", manifest["artifact"]["precision"])
        fmt = manifest["artifact"]["format"]
        if (manifest.get("recipe") or {}).get("kind") != "module":
            baselines.setdefault(model, path)      # the torch baseline is the model as exported, unpruned
        for threads in plan.threads:
            row = BenchRow(model, fmt, recipe, threads, "needs-macos", macs=int(manifest["model"]["macs"]),
                           bytes=int(manifest["artifact"]["total_bytes"]), path=str(path.parent))
            rows.append(row)
            if fmt == "coreml" and platform.system() != "Darwin":
                row.message = "Core ML latency needs macOS (Apple's runtime); the MIL evaluator is not a latency"
                continue
            progress(f"{model} {fmt} {recipe} @{threads} threads")
            _fill(row, run_worker({"kind": "artifact", "manifest": str(path), "threads": threads, "runs": plan.runs,
                               "warmup": plan.warmup}))
    if plan.torch_baseline:
        for model, path in baselines.items():
            macs = int(json.loads(path.read_text())["model"]["macs"])
            for memory_format in ("contiguous", "channels_last"):
                for threads in plan.threads:
                    progress(f"{model} torch eager {memory_format} @{threads} threads")
                    job = {"kind": "torch", "manifest": str(path), "threads": threads, "runs": plan.runs,
                           "warmup": plan.warmup, "memory_format": memory_format}
                    rows.append(_best_of(BenchRow(model, "torch", memory_format, threads, "failed", macs=macs),
                                         [run_worker(job) for _ in range(max(1, plan.baseline_processes))]))
    _derive(rows, peaks)
    settings = {"threads": list(plan.threads), "runs": plan.runs, "warmup": plan.warmup,
                "torch_baseline_processes": plan.baseline_processes,
                "inputs": "seeded uniform noise over each input's contract range, at the exported shape"}
    return BenchRun(rows, describe_machine(), peaks, load, settings)


def _best_of(row: BenchRow, results: list[dict[str, Any]]) -> BenchRow:
    """The process with the lowest p50; every process's p50 is kept in the message, so the spread shows."""
    done = [r for r in results if r.get("ok")]
    if not done:
        return _fill(row, results[0])
    best = min(done, key=lambda r: float(np.median(r["times_ms"])))
    _fill(row, best)
    spread = ", ".join(f"{float(np.median(r['times_ms'])):.1f}" for r in done)
    row.message = f"fastest of {len(done)} processes (p50 ms: {spread})"
    return row


def _derive(rows: list[BenchRow], peaks: dict[int, Any]) -> None:
    """Throughput, efficiency against the machine's own peak, and the ratio to torch eager (contiguous)."""
    torch_p50 = {(r.model, r.threads): r.stats.p50_ms for r in rows
                 if r.format == "torch" and r.recipe == "contiguous" and r.stats}
    for r in rows:
        if not r.stats:
            continue
        r.gmacs_per_s = r.macs / (r.stats.p50_ms / 1000) / 1e9
        peak = peaks.get(r.threads)
        if peak is not None:
            int8 = r.recipe.partition("+")[2] in INT8_RECIPES or r.recipe in INT8_RECIPES
            r.peak_kind = "int8 GEMM" if int8 else "fp32 GEMM"
            r.efficiency = 2 * r.gmacs_per_s / (peak.int8_gops if int8 else peak.fp32_gflops)
        base = torch_p50.get((r.model, r.threads))
        if base:
            r.vs_torch = r.stats.p50_ms / base


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
    if baseline.get("schema") != BENCH_SCHEMA:
        raise ValueError(f"baseline is not an {BENCH_SCHEMA} file (schema {baseline.get('schema')!r})")
    before = {r["key"]: r["p50_vs_torch"] for r in baseline["rows"] if r.get("p50_vs_torch") and r["format"] != "torch"}
    compared = [Regression(r["key"], before[r["key"]], r["p50_vs_torch"], r["p50_vs_torch"] / before[r["key"]] - 1)
                for r in current["rows"] if r.get("p50_vs_torch") and r["key"] in before and r["format"] != "torch"]
    return compared, [c for c in compared if c.change > max_regression]
