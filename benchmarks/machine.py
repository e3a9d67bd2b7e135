"""The machine a benchmark ran on: its own GEMM peak (so figures compare across machines as ratios) and
whether anything else is using it (a busy core made every figure here 2-7x slower)."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

BUSY_PERCENT = 20.0   # another process above this share of one core makes the machine busy


@dataclass(frozen=True)
class MachinePeak:
    threads: int
    fp32_gflops: float        # torch.mm, float32
    int8_gops: float          # torch._int_mm, int8 x int8 -> int32
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "fp32_gflops": round(self.fp32_gflops, 1),
                "int8_gops": round(self.int8_gops, 1), "gemm_size": self.size,
                "method": f"best of 5 square GEMMs of {self.size}, torch CPU"}


def _best_seconds(fn: Callable[[], Any], repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peak(threads: int, size: int = 2048) -> MachinePeak:
    """A short microbenchmark (about a second): float32 and int8 matrix multiply at `threads` threads. 2048 sits
    on the plateau (one run at 2 threads, int8: 839 GOP/s at 1024, 894 at 2048, 813 at 4096 taking 5 s)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        fp32 = 2 * size ** 3 / _best_seconds(lambda: torch.mm(a, b)) / 1e9
        qa = torch.randint(-128, 127, (size, size), dtype=torch.int8)
        qb = torch.randint(-128, 127, (size, size), dtype=torch.int8)
        int8 = 2 * size ** 3 / _best_seconds(lambda: torch._int_mm(qa, qb)) / 1e9
    finally:
        torch.set_num_threads(previous)
    return MachinePeak(threads, fp32, int8, size)


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


def describe_machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "system": platform.platform(), "python": platform.python_version()}
