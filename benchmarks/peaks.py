"""The machine's peak as each runtime's own kernels reach it: a stack of 3x3 convolutions exported to every
format that can be timed here, at fp32 and int8 (w8a8), timed in the same worker processes as artifacts.
A stack, not one convolution: a single conv's I/O (layout transposes, int8 quantize and dequantize of the
input and output) took a third of its time, and real models ran above that "peak".

torch._int_mm is not used: on a CPU without VNNI it runs a slow fallback (1.6 GOP/s on an AVX2-only Zen 3),
which made an artifact look like "139x of the int8 peak". An artifact's efficiency is taken against its own
runtime's peak for its arithmetic; an efficiency above 100% means the probe did not find the peak, and is
reported as such, never printed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edgeport.exporters.base import ExportRequest
from edgeport.exporters.formats import all_formats
from edgeport.models.spec import TensorContract
from edgeport.runtimes.atomic import commit_dir, staging_dir, write_json
from edgeport.runtimes.paths import cache_root

if TYPE_CHECKING:
    from torch import nn

    from edgeport.exporters.formats import Format

# (channels, height = width) of the probe: PROBE_DEPTH 3x3 convolutions + ReLU, channels -> channels, at 1xCxSxS
PROBES = ((64, 64), (128, 32))
PROBE_DEPTH = 8
PROBE_RUNS, PROBE_WARMUP = 10, 2


@dataclass(frozen=True)
class KernelPeak:
    format: str
    arithmetic: str       # "fp32" or "int8"
    threads: int
    gops: float           # 2 x MACs / p50, the best probe
    engine: str
    probe: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "arithmetic": self.arithmetic, "threads": self.threads,
                "gops": round(self.gops, 1), "engine": self.engine, "probe": self.probe}


@dataclass(frozen=True)
class Probe:
    format: str
    arithmetic: str
    channels: int
    size: int
    folder: Path
    record: dict
    inputs: list

    @property
    def macs(self) -> int:
        return PROBE_DEPTH * self.channels * self.channels * 9 * self.size * self.size

    @property
    def label(self) -> str:
        return f"{PROBE_DEPTH} x conv3x3 {self.channels}->{self.channels} at {self.size}x{self.size}"


def _cache_key(fmt: Format) -> str:
    from importlib.metadata import version

    tools = [version(n) for n in ("edgeport", "torch", "onnxruntime", "ai-edge-litert", "executorch")]
    return hashlib.sha256(json.dumps([fmt.name, tools]).encode()).hexdigest()[:16]


def _probe_module(channels: int) -> nn.Module:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [m for _ in range(PROBE_DEPTH) for m in (nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())]
    return nn.Sequential(*layers).eval()


def _export_probe(fmt: Format, arithmetic: str, channels: int, size: int, folder: Path) -> dict:
    """The probe through the format's own exporter (w8a8 for int8, calibrated on noise); returns its record."""
    import torch

    rng = np.random.default_rng(0)
    calib = [{"x": rng.uniform(0, 1, (1, channels, size, size)).astype(np.float32)} for _ in range(4)]
    request = ExportRequest(module=_probe_module(channels), example_inputs=(torch.from_numpy(calib[0]["x"]),),
                            input_names=("x",), output_names=("y",), output_shapes=((1, channels, size, size),),
                            precision="w8a8" if arithmetic == "int8" else "fp32", work_dir=folder, stem="probe",
                            sample_inputs=calib, calibration=calib if arithmetic == "int8" else ())
    return fmt.exporter.export(request).to_dict()


def probes_for(fmt: Format, arithmetic: str, shapes: tuple[tuple[int, int], ...] = PROBES) -> list[Probe]:
    """The format's probe artifacts, exported once per tool versions into the cache and reused."""
    probes = []
    for channels, size in shapes:
        folder = cache_root() / "peak-probes" / _cache_key(fmt) / f"{arithmetic}-{PROBE_DEPTH}x{channels}x{size}"
        if not (folder / "record.json").is_file():
            with staging_dir(folder.parent, folder.name) as work:
                write_json(work / "record.json", _export_probe(fmt, arithmetic, channels, size, work))
                commit_dir(work, folder)
        inputs = [TensorContract("x", (1, channels, size, size)).to_dict()]
        probes.append(Probe(fmt.name, arithmetic, channels, size, folder,
                            json.loads((folder / "record.json").read_text()), inputs))
    return probes


def measure_peaks(threads: tuple[int, ...], run_worker: Callable[[dict], dict],
                  progress: Callable[[str], None] = lambda _: None, shapes: tuple[tuple[int, int], ...] = (),
                  formats: tuple[str, ...] = ()) -> tuple[list[KernelPeak], list[str]]:
    """The fp32 and int8 peak of each timeable format among `formats` (all when empty) at each thread count;
    and what could not be measured."""
    peaks, problems = [], []
    for fmt in all_formats().values():
        if fmt.latency_unavailable() or (formats and fmt.name not in formats):
            continue
        for arithmetic in ("fp32", "int8") if "w8a8" in fmt.recipes else ("fp32",):
            progress(f"kernel peak: {fmt.name} {arithmetic}")
            try:
                probes = probes_for(fmt, arithmetic, shapes or PROBES)
            except Exception as exc:  # noqa: BLE001  (a format whose probe will not export has no peak)
                problems.append(f"{fmt.name} {arithmetic}: probe did not export: {str(exc).splitlines()[0][:200]}")
                continue
            for t in threads:
                peak = _best(probes, t, run_worker)
                if isinstance(peak, str):
                    problems.append(peak)
                else:
                    peaks.append(peak)
    return peaks, problems


def _best(probes: list[Probe], threads: int, run_worker: Callable[[dict], dict]) -> KernelPeak | str:
    best: KernelPeak | None = None
    for probe in probes:
        result = run_worker({"kind": "artifact", "record": probe.record, "dir": str(probe.folder),
                             "inputs": probe.inputs, "threads": threads, "runs": PROBE_RUNS,
                             "warmup": PROBE_WARMUP})
        if not result.get("ok"):
            return f"{probe.format} {probe.arithmetic} peak @{threads}: {result.get('error', 'failed')}"
        gops = 2 * probe.macs / (float(np.median(result["times_ms"])) / 1000) / 1e9
        if best is None or gops > best.gops:
            best = KernelPeak(probe.format, probe.arithmetic, threads, gops, result["engine"], probe.label)
    return best


def torch_fp32_peak(threads: int, size: int = 2048) -> KernelPeak:
    """PyTorch eager's own fp32 kernel peak (MKL GEMM), for the eager baseline rows."""
    import time

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return KernelPeak("torch", "fp32", threads, 2 * size ** 3 / best / 1e9, f"PyTorch {torch.__version__} torch.mm",
                      f"GEMM {size}x{size}x{size}")
