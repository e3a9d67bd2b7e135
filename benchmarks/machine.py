"""The machine a benchmark ran on: its CPU and SIMD features (int8 speed differs about 4x between a CPU with
int8 dot products and one without) and whether anything else is using it (a busy core made every figure here
2-7x slower). The runtimes' own kernel peaks are measured in benchmarks/peaks.py."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

BUSY_PERCENT = 20.0   # another process above this share of one core makes the machine busy
# /proc/cpuinfo flag -> what people call it; the ones that decide fp32 / bf16 / int8 kernel speed
SIMD_FLAGS = {
    "sse4_2": "SSE4.2", "avx": "AVX", "avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16",
    "asimd": "NEON", "asimddp": "dotprod", "i8mm": "I8MM", "sve": "SVE", "sve2": "SVE2", "bf16": "BF16",
}
INT8_DOT = ("AVX-512 VNNI", "AVX-VNNI", "AMX-INT8", "dotprod", "I8MM")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return set()
    line = next((ln for ln in cpuinfo.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), "")
    return set(line.partition(":")[2].split())


def simd_features(flags: set[str] | None = None) -> list[str]:
    """The SIMD features that matter for these kernels, in a fixed order."""
    flags = cpu_flags() if flags is None else flags
    return [name for flag, name in SIMD_FLAGS.items() if flag in flags]


def describe_machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    simd = simd_features()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "system": platform.platform(), "python": platform.python_version(), "simd": simd,
            "int8_dot_product": any(f in simd for f in INT8_DOT)}


@dataclass(frozen=True)
class LoadCheck:
    cores: int
    load_average: tuple[float, float, float]
    busy: list[tuple[int, str, float]] = field(default_factory=list)   # (pid, name, % of one core)

    @property
    def is_busy(self) -> bool:
        return bool(self.busy)

    def describe(self) -> str:
        if not self.busy:
            return f"idle enough: no other process above {BUSY_PERCENT:g}% of a core"
        top = ", ".join(f"{name} (pid {pid}) {pct:.0f}%" for pid, name, pct in self.busy[:3])
        return (f"machine busy: {top} of a core; figures taken now can be several times slower "
                "(stop them, or run without --strict to measure anyway)")

    def to_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "load_average": list(self.load_average), "busy_threshold_percent": BUSY_PERCENT,
                "busy_processes": [{"pid": p, "name": n, "cpu_percent": round(c, 1)} for p, n, c in self.busy]}


def check_load(sample_seconds: float = 0.5) -> LoadCheck:
    """Other processes' CPU use over a short window (this process and its children excluded)."""
    import psutil

    me = psutil.Process()
    mine = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.pid not in mine]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(sample_seconds)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct > BUSY_PERCENT:
            busy.append((p.pid, p.info.get("name") or "?", pct))
    return LoadCheck(os.cpu_count() or 1, tuple(round(x, 2) for x in os.getloadavg()),
                     sorted(busy, key=lambda b: -b[2]))
