"""The tune ladder's results: one row per artifact (verdict joined with latency), the Pareto front, whether
int8 beats fp32 on this CPU, and the timing spread read off identical files."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.export.results import ExportRow, ExportSummary
from edgeport.parity_tests.manifest import Manifest, read_manifest
from edgeport.report import human_bytes
from edgeport.runtimes.json_numbers import db_for_json, number_for_json

LADDER = ("fp32", "fp16", "w8", "w8a8", "fp16+auto", "w8+auto", "w8a8+auto", "prune50+recover", "prune50+w8a8")


@dataclass(frozen=True)
class TuneRow:
    format: str
    recipe: str
    status: str
    bytes: int
    p50_ms: float | None
    db_vs_original: float | None
    task: dict[str, float]
    engine: str
    latency_engine: str
    vs_fp32_latency: float | None = None
    note: str = ""
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "recipe": self.recipe, "status": self.status, "bytes": self.bytes,
                "p50_ms": number_for_json(self.p50_ms, 2), "psnr_vs_original_db": db_for_json(self.db_vs_original), "task": self.task,
                "parity_engine": self.engine, "latency_engine": self.latency_engine,
                "p50_vs_fp32": number_for_json(self.vs_fp32_latency, 3), "note": self.note}


def _versus_original(row: ExportRow, manifest: Manifest | None) -> float | None:
    """What the row costs in quality: a module recipe (prune50+...) is judged by its gate against the pruned
    model it exports, but the trade-off is against the original, on the photos."""
    if manifest is not None and manifest.recipe.rewrites_module:
        value = manifest.recipe.details.get("artifact_vs_original_photos_db")
        return math.inf if value is None and row.status == "pass" else value
    return row.photo_db if row.gated_on == "photos" else row.worst_psnr_db


def _task_versus_original(manifest: Manifest) -> dict[str, float]:
    """The task score (mask IoU) against the original model: for a module recipe the parity report's is
    against the pruned model, so the rewrite's own score against the original is added (PyTorch level)."""
    task = manifest.parity.task_worst
    if manifest.recipe.rewrites_module:
        return dict(manifest.recipe.details.get("vs_original_task") or {k: math.nan for k in task})
    return task


def tune_rows(summary: ExportSummary, bench: dict[str, Any], threads: int) -> list[TuneRow]:
    """One row per exported artifact: the export's verdict joined with its latency at `threads`."""
    timed = {(b["format"], b["recipe"]): b for b in bench["rows"] if b["threads"] == threads}
    rows = []
    for r in summary.rows:
        b = timed.get((r.format, r.recipe), {})
        p50 = (b.get("latency") or {}).get("p50_ms")
        manifest = read_manifest(Path(r.path) / "manifest.json") if r.path else None
        task = _task_versus_original(manifest) if manifest is not None else {}
        note = b.get("message", "") if b.get("status") not in (None, "ok") else ""
        rows.append(TuneRow(r.format, r.recipe, r.status, r.bytes, p50, _versus_original(r, manifest), task, r.engine,
                            b.get("engine", ""), note=note or (r.message.split(";")[0] if r.status != "pass" else ""),
                            digest=r.digest))
    fp32 = {r.format: r.p50_ms for r in rows if r.recipe == "fp32" and r.p50_ms}
    return [TuneRow(**{**r.__dict__, "vs_fp32_latency": r.p50_ms / fp32[r.format]})
            if r.p50_ms and r.format in fp32 else r for r in rows]


def int8_verdicts(rows: list[TuneRow]) -> list[str]:
    """Per format: does its int8 artifact run faster than its fp32 one on this CPU."""
    lines = []
    for fmt in dict.fromkeys(r.format for r in rows):
        for recipe in ("w8a8", "w8"):
            row = next((r for r in rows if r.format == fmt and r.recipe == recipe and r.vs_fp32_latency), None)
            if row is not None:
                faster = row.vs_fp32_latency < 1.0
                lines.append(f"{fmt} {recipe}: {row.vs_fp32_latency:.2f}x the fp32 p50 -> int8 "
                             f"{'beats' if faster else 'does NOT beat'} fp32 on this CPU")
    return lines


def timing_spread(rows: list[TuneRow]) -> list[str]:
    """Rows whose files are identical (a +auto recipe that needed no search) timed apart: the spread between
    them is this machine's noise, below which two p50s say nothing."""
    lines = []
    for digest in dict.fromkeys(r.digest for r in rows if r.digest):
        same = [r for r in rows if r.digest == digest and r.p50_ms]
        if len(same) > 1:
            fast, slow = min(r.p50_ms for r in same), max(r.p50_ms for r in same)
            lines.append(f"{same[0].format} {' = '.join(r.recipe for r in same)}: one file, timed "
                         f"{' / '.join(f'{r.p50_ms:.1f}' for r in same)} ms ({slow / fast - 1:.0%} apart: noise)")
    return lines


def pareto_front(points: list[tuple[TuneRow, float]]) -> set[tuple[str, str]]:
    """Per format, the (row, cost) points no other point beats on both axes (lower cost, higher PSNR); rows
    without a PSNR figure are never on it. The table uses size as the cost, the chart size and latency."""
    known = [(r, x) for r, x in points if r.db_vs_original is not None and not math.isnan(r.db_vs_original)]
    return {(r.format, r.recipe) for r, x in known
            if not any(o.format == r.format and o is not r and ox <= x and o.db_vs_original >= r.db_vs_original
                       and (ox < x or o.db_vs_original > r.db_vs_original) for o, ox in known)}


def pareto(rows: list[TuneRow]) -> set[tuple[str, str]]:
    """Rows no other passing row of the same format beats on both size and PSNR."""
    return pareto_front([(r, r.bytes) for r in rows if r.status == "pass"])


def tune_table(rows: list[TuneRow], front: set[tuple[str, str]]) -> str:
    head = ["format", "recipe", "size", "p50 ms", "vs fp32", "PSNR vs original", "task", "status", "pareto"]
    body = [[r.format, r.recipe, human_bytes(r.bytes) if r.bytes else "-",
             f"{r.p50_ms:.1f}" if r.p50_ms else "-",
             f"{r.vs_fp32_latency:.2f}x" if r.vs_fp32_latency else "-",
             "exact" if r.db_vs_original is not None and math.isinf(r.db_vs_original) else
             (f"{r.db_vs_original:.1f}" if r.db_vs_original is not None else "-"),
             ", ".join(f"{k} {v:.3f}" for k, v in r.task.items()) or "-", r.status,
             "*" if (r.format, r.recipe) in front else ""] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [head, body and head, *body]]
    lines[1] = "  ".join("-" * w for w in widths)
    return "\n".join(lines)


def machine_text(machine: dict[str, Any]) -> str:
    simd = ", ".join(machine.get("simd", []))
    return f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores; {simd})"


def tune_markdown(data: dict[str, Any], rows: list[TuneRow], front: set[tuple[str, str]]) -> str:
    return (f"# edgeport tune: {data['model']}\n\n{data['source']}; {machine_text(data['machine'])}; {data['threads']} "
            f"threads\n\n```\n{tune_table(rows, front)}\n```\n\n" + "\n".join(f"- {x}" for x in data["int8_vs_fp32"])
            + "\n" + "\n".join(f"- {x}" for x in data["timing_noise"]) + "\n\n![size and PSNR](tune.png)\n")
