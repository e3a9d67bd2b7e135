"""`edgeport tune`: the compression trade-off of one model, measured.

Exports the recipe ladder to each format (parity in the real runtimes), times every artifact in its runtime
(benchmarks/, one worker process at a time, the runtimes' kernel peaks beside), and prints size, p50, PSNR and
the task metric per row, with whether int8 beats fp32 on this CPU, and a Pareto chart (tune.png).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        r = lambda v, n=2: None if v is None or (isinstance(v, float) and math.isinf(v)) else round(v, n)  # noqa: E731
        return {"format": self.format, "recipe": self.recipe, "status": self.status, "bytes": self.bytes,
                "p50_ms": r(self.p50_ms), "psnr_vs_original_db": r(self.db_vs_original), "task": self.task,
                "parity_engine": self.engine, "latency_engine": self.latency_engine,
                "p50_vs_fp32": r(self.vs_fp32_latency, 3), "note": self.note}


def _versus_original(row: Any, manifest: Any) -> float | None:
    """What the row costs in quality: a module recipe (prune50+...) is judged by its gate against the pruned
    model it exports, but the trade-off is against the original, on the photos."""
    if manifest is not None and manifest.recipe.rewrites_module:
        value = manifest.recipe.details.get("artifact_vs_original_photos_db")
        return math.inf if value is None and row.status == "pass" else value
    return row.photo_db if row.gated_on == "photos" else row.worst_psnr_db


def _task_versus_original(manifest: Any) -> dict[str, float]:
    """The task score (mask IoU) against the original model: for a module recipe the parity report's is
    against the pruned model, so the rewrite's own score against the original is added (PyTorch level)."""
    task = manifest.parity.task_worst
    if manifest.recipe.rewrites_module:
        return dict(manifest.recipe.details.get("vs_original_task") or {k: math.nan for k in task})
    return task


def tune_rows(summary: Any, bench: dict[str, Any], threads: int) -> list[TuneRow]:
    """One row per exported artifact: the export's verdict joined with its latency at `threads`."""
    from parity_tests.manifest import read_manifest

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


def pareto(rows: list[TuneRow]) -> set[tuple[str, str]]:
    """Rows no other passing row of the same format beats on both size and PSNR."""
    front = set()
    ok = [r for r in rows if r.status == "pass" and r.db_vs_original is not None and not math.isnan(r.db_vs_original)]
    for r in ok:
        if not any(o.format == r.format and o is not r and o.bytes <= r.bytes and o.db_vs_original >= r.db_vs_original
                   and (o.bytes < r.bytes or o.db_vs_original > r.db_vs_original) for o in ok):
            front.add((r.format, r.recipe))
    return front


def tune_table(rows: list[TuneRow], front: set[tuple[str, str]]) -> str:
    from edgeport.report import human_bytes

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


def add_tune_parser(sub: Any) -> None:
    from edgeport.cli import source_arguments

    p = sub.add_parser("tune", help="the compression trade-off of one model: the recipe ladder exported, checked "
                                    "and timed, with size, p50, PSNR and task metric per row and a Pareto chart")
    source_arguments(p)
    p.add_argument("--recipe", dest="recipes", type=lambda t: tuple(x.strip() for x in t.split(",") if x.strip()),
                   default=None, metavar="LIST", help=f"the ladder (default: {','.join(LADDER)})")
    p.add_argument("--threads", type=int, default=2, help="threads for the latency rows (default 2)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per artifact after warm-up (default 10)")


def cmd_tune(args: Any) -> int:
    import sys

    from benchmarks.latency import BenchPlan, run_bench
    from benchmarks.machine import check_load
    from edgeport.atomic import write_json, write_text
    from edgeport.cli import export_plan, local_output
    from edgeport.pipeline import run_export
    from edgeport.progress import Progress
    from edgeport.tune_chart import draw_pareto

    from edgeport.errors import UsageError

    if bool(args.model) == bool(args.custom):
        raise UsageError("tune one model: a zoo MODEL or --model FILE.py:FACTORY (with --input)")
    local_output(args)
    plan = export_plan(args, args.model or args.custom, tuple(args.recipes or LADDER))
    summary = run_export(plan, Progress(enabled=not args.quiet))
    root = plan.out_root / summary.model
    say = (lambda _: None) if args.quiet else (lambda text: print(f"  bench {text}", file=sys.stderr, flush=True))
    bench = run_bench(BenchPlan(root, threads=(args.threads,), runs=args.runs, torch_baseline=False), check_load(),
                      say).to_dict()
    rows = tune_rows(summary, bench, args.threads)
    front = pareto(rows)
    data = {"schema": "edgeport.tune/1", "model": summary.model, "source": summary.source,
            "machine": bench["machine"], "threads": args.threads, "peaks": bench["peaks"],
            "rows": [r.to_dict() | {"pareto": (r.format, r.recipe) in front} for r in rows],
            "int8_vs_fp32": int8_verdicts(rows), "timing_noise": timing_spread(rows)}
    write_json(root / "tune.json", data)
    write_text(root / "tune.md", _markdown(data, rows, front))
    draw_pareto(summary.model, rows, root / "tune.png")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"\n{summary.model} ({summary.source}); {_machine(bench['machine'])}; {args.threads} threads")
        print(tune_table(rows, front))
        for line in data["int8_vs_fp32"] + data["timing_noise"]:
            print(f"  {line}")
        print(f"  * on the size/PSNR Pareto front of its format; chart: {root / 'tune.png'}")
    return summary.exit_code


def _machine(machine: dict[str, Any]) -> str:
    simd = ", ".join(machine.get("simd", []))
    return f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores; {simd})"


def _markdown(data: dict[str, Any], rows: list[TuneRow], front: set[tuple[str, str]]) -> str:
    return (f"# edgeport tune: {data['model']}\n\n{data['source']}; {_machine(data['machine'])}; {data['threads']} "
            f"threads\n\n```\n{tune_table(rows, front)}\n```\n\n" + "\n".join(f"- {x}" for x in data["int8_vs_fp32"])
            + "\n" + "\n".join(f"- {x}" for x in data["timing_noise"]) + "\n\n![size and PSNR](tune.png)\n")
