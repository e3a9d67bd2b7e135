"""The benchmark's markdown table (for PR comments) and PNG chart, from its JSON."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bar_chart import Bar, BarGroup, draw_bar_chart


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def to_markdown(data: dict[str, Any]) -> str:
    m, load = data["machine"], data["load_check"]
    peaks = "; ".join(f"{t} threads: fp32 {p['fp32_gflops']:.0f} GFLOP/s, int8 {p['int8_gops']:.0f} GOP/s"
                      for t, p in data["peak"].items())
    lines = [f"# Latency ({data['created'][:10]}, {m['cpu']}, {m['cores']} cores, {m['system']})", "",
             f"Machine peak (torch GEMM): {peaks}.",
             f"Load before measuring: {'busy: ' + ', '.join(p['name'] for p in load['busy_processes']) if load['busy_processes'] else 'idle'}"
             f" (load average {load['load_average'][0]}).", "",
             "| model | format | recipe | threads | p50 ms | min | p90 | p99 | vs torch | GMAC/s | efficiency | cold start ms | peak RSS MB (model) | engine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lat = r["latency"] or {}
        eff = f"{r['efficiency']:.1%} of {r['efficiency_against']}" if r["efficiency"] is not None else "-"
        vs = f"{r['p50_vs_torch']:.2f}x" if r["p50_vs_torch"] is not None else "-"
        status = "" if r["status"] == "ok" else f" ({r['status']}: {r['message'][:80]})"
        lines.append(f"| {r['model']} | {r['format']} | {r['recipe']} | {r['threads']} | {_ms(lat.get('p50_ms'))} | "
                     f"{_ms(lat.get('min_ms'))} | {_ms(lat.get('p90_ms'))} | {_ms(lat.get('p99_ms'))} | {vs} | "
                     f"{_ms(r['gmacs_per_s'])} | {eff} | {_ms(r['cold_start_ms'])} | {_ms(r['peak_rss_mb'])} "
                     f"({_ms(r['model_rss_mb'])}) | "
                     f"{r['engine'] or '-'}{status} |")
    lines += ["", "vs torch: p50 against PyTorch eager fp32 (contiguous) on the same model and threads, measured in "
              "this run. Efficiency: achieved ops (2 x MACs / p50) against the machine's own GEMM peak for that "
              "arithmetic (int8 for w8 / w8a8, fp32 otherwise); conv kernels can beat a GEMM, so it can pass 100%. "
              "Cold start: a fresh process's runtime import, load and first run. Peak RSS: the worker process "
              "(torch-free for ONNX and TFLite); in brackets, what loading and running the model added."]
    return "\n".join(lines) + "\n"


def draw_latency_chart(data: dict[str, Any], path: Path) -> None:
    """p50 per artifact at the largest thread count, per model; the tick marks torch eager (contiguous)."""
    threads = max(int(t) for t in data["peak"]) if data["peak"] else 1
    groups: dict[str, BarGroup] = {}
    for r in data["rows"]:
        if r["threads"] != threads or not r["latency"]:
            continue
        group = groups.setdefault(r["model"], BarGroup(f"{r['model']} ({threads} threads)", []))
        p50 = r["latency"]["p50_ms"]
        group.bars.append(Bar(f"{r['format']} {r['recipe']}", p50, f"{p50:.1f} ms", r["format"]))
        if r["format"] == "torch" and r["recipe"] == "contiguous":
            groups[r["model"]] = BarGroup(group.title, group.bars, tick=p50)
    draw_bar_chart("p50 latency per artifact (tick: PyTorch eager fp32, contiguous)", list(groups.values()), path)
