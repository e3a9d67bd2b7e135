"""The benchmark's markdown table (for PR comments) and PNG chart, from its JSON."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeport.benchmarks.bar_chart import Bar, BarGroup, draw_bar_chart


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def peaks_line(data: dict[str, Any]) -> str:
    peaks = data.get("peaks") or []
    if not peaks:
        return "Kernel peaks: not measured in this run."
    text = "; ".join(f"{p['format']} {p['arithmetic']} @{p['threads']}: {p['gops']:.0f} GOP/s" for p in peaks)
    problems = data.get("peak_problems") or []
    return f"Kernel peaks (stacked 3x3 convolution probes, each runtime's own kernels): {text}." + (
        f" Not measured: {'; '.join(problems)}." if problems else "")


def machine_line(data: dict[str, Any]) -> str:
    m = data["machine"]
    simd = ", ".join(m.get("simd") or []) or "unknown"
    dot = "has" if m.get("int8_dot_product") else "has no"
    return f"{m['cpu']}, {m['cores']} cores, SIMD: {simd} (the CPU {dot} int8 dot-product instructions)"


def _row_line(r: dict[str, Any]) -> str:
    lat = r["latency"] or {}
    eff = f"{r['efficiency']:.1%} of {r['efficiency_against']}" if r["efficiency"] is not None else "-"
    vs = f"{r['p50_vs_torch']:.2f}x" if r["p50_vs_torch"] is not None else "-"
    status = "" if r["status"] == "ok" else f" ({r['status']}: {r['message'][:80]})"
    return (f"| {r['model']} | {r['format']} | {r['recipe']} | {r['threads']} | {_ms(lat.get('p50_ms'))} | "
            f"{_ms(lat.get('min_ms'))} | {_ms(lat.get('p90_ms'))} | {_ms(lat.get('p99_ms'))} | {vs} | "
            f"{_ms(r['gmacs_per_s'])} | {eff} | {_ms(r['cold_start_ms'])} | {_ms(r['peak_rss_mb'])} "
            f"({_ms(r['model_rss_mb'])}) | {r['engine'] or '-'}{status} |")


def to_markdown(data: dict[str, Any]) -> str:
    load = data["load_check"]
    busy = ", ".join(p["name"] for p in load["busy_processes"])
    lines = [f"# Latency ({data['created'][:10]}, {data['machine']['system']})", "", f"Machine: {machine_line(data)}.",
             "", peaks_line(data),
             f"Load before measuring: {'busy: ' + busy if busy else 'idle'} (load average {load['load_average'][0]}).",
             "", "| model | format | recipe | threads | p50 ms | min | p90 | p99 | vs torch | GMAC/s | efficiency | "
             "cold start ms | peak RSS MB (model) | engine |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_row_line(r) for r in data["rows"]]
    lines += ["", "vs torch: p50 against PyTorch eager fp32 (contiguous) on the same model and threads, measured in "
              "this run. Efficiency: achieved ops (2 x MACs / p50) against the same runtime's own kernel peak for "
              "that arithmetic (int8 for int8 recipes, fp32 otherwise), measured in this run on a stack of 3x3 "
              "convolutions; above 100% the probe missed the runtime's best kernels and no efficiency is given. "
              "Cold start: a fresh process's runtime import, load and first run. Peak RSS: the worker process "
              "(torch-free for ONNX and TFLite); in brackets, what loading and running the model added."]
    return "\n".join(lines) + "\n"


def draw_latency_chart(data: dict[str, Any], path: Path) -> None:
    """p50 per artifact at the largest thread count, per model; the tick marks torch eager (contiguous)."""
    threads = max((r["threads"] for r in data["rows"]), default=1)
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
