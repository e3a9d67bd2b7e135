"""`edgeport size` and `edgeport bench`: reports over artifacts that are already on disk."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeport.benchmarks.bench_report import draw_latency_chart, machine_line, peaks_line, to_markdown
from edgeport.benchmarks.latency import READABLE_BENCH, BenchPlan, compare, run_bench
from edgeport.benchmarks.machine import check_load
from edgeport.benchmarks.size_chart import draw_size_chart
from edgeport.benchmarks.size_report import collect
from edgeport.benchmarks.size_report import to_markdown as size_markdown
from edgeport.commands.args import csv_list, executor_arguments, require_manifests
from edgeport.errors import USER_ERROR, UsageError
from edgeport.report import human_bytes, table
from edgeport.runtimes.atomic import ensure_writable, write_json, write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("size", help="size report: each artifact against fp32 weights, largest layers, PNG chart")
    p.add_argument("path", nargs="?", type=Path, default=Path("artifacts"), help="artifact root (default ./artifacts)")
    p.add_argument("--out", type=Path, help="where to write size-report.{md,json,png} (default: the artifact root)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(handler=cmd_size)
    p = sub.add_parser("bench", help="latency, cold start and memory of each artifact in its runtime, beside "
                                     "PyTorch eager; --compare gates regressions")
    p.add_argument("path", nargs="?", type=Path, default=None,
                   help="an artifact folder, a model's folder, or the root (default ./artifacts)")
    p.add_argument("--all", action="store_true", help="every model under the artifact root ./artifacts (no PATH)")
    p.add_argument("--threads", type=csv_list, default=("1", "2"), metavar="LIST", help="thread counts (default 1,2)")
    p.add_argument("--runs", type=int, default=20, help="timed runs after warm-up (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager baseline")
    p.add_argument("--no-peaks", action="store_true", help="skip the runtimes' kernel-peak probes (no efficiency)")
    p.add_argument("--strict", action="store_true", help="refuse to measure when another process is busy")
    p.add_argument("--out", type=Path, help="where to write bench.{json,md,png} (default: the artifact folder)")
    executor_arguments(p, "one task per model folder, one at a time on each node (the folder must be on a "
                          "filesystem every node mounts)")
    p.add_argument("--compare", type=Path, metavar="BASELINE.json", help="an earlier bench.json to gate against")
    p.add_argument("--max-regression", default="10%", metavar="PCT",
                   help="fail when an artifact's p50/torch ratio grows past this (default 10%%)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=cmd_bench)


def _percent(text: str) -> float:
    try:
        value = float(text.strip().rstrip("%")) / 100
    except ValueError:
        raise UsageError(f"--max-regression takes a percentage such as 10%, not {text!r}") from None
    if value < 0:
        raise UsageError(f"--max-regression must not be negative, not {text!r}")
    return value


def _read_baseline(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the --compare baseline {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") not in READABLE_BENCH:
        raise UsageError(f"{path} is not an `edgeport bench` result ({', '.join(READABLE_BENCH)}); give a bench.json")
    return data


def _bench_plan(args: argparse.Namespace) -> BenchPlan:
    if args.all and args.path is not None:
        raise UsageError(f"--all benchmarks every model under ./artifacts; drop it to benchmark {args.path}, or drop "
                         f"{args.path}")
    root = args.path or Path("artifacts")
    if not root.exists():
        raise FileNotFoundError(f"no such artifact folder: {root}")
    threads = tuple(int(t) for t in args.threads if t.isdigit() and int(t) > 0)
    if len(threads) != len(args.threads) or args.runs < 1 or args.warmup < 0:
        raise UsageError("--threads takes positive integers (e.g. 1,2); --runs must be >= 1, --warmup >= 0")
    return BenchPlan(root, threads, args.runs, args.warmup, not args.no_torch, not args.no_peaks)


def _print_bench(data: dict, regressions: list, args: argparse.Namespace, out: Path) -> None:
    rows = [(r["model"], r["format"], r["recipe"], r["threads"],
             f"{r['latency']['p50_ms']:.1f}" if r["latency"] else r["status"],
             f"{r['p50_vs_torch']:.2f}x" if r["p50_vs_torch"] else "-",
             f"{r['efficiency']:.1%}" if r["efficiency"] is not None else "-",
             f"{r['cold_start_ms']:.0f}" if r["cold_start_ms"] else "-",
             f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-",
             human_bytes(r["bytes"]) if r["bytes"] else "-") for r in data["rows"]]
    print(table(("model", "format", "recipe", "thr", "p50 ms", "vs torch", "of peak", "cold ms", "RSS MB", "size"),
                rows))
    print(f"machine: {machine_line(data)}")
    print(peaks_line(data))
    for r in data["rows"]:
        if r["status"] != "ok" and r["message"]:
            print(f"  {r['key']}: {r['status']}: {r['message']}")
    if "comparison" in data:
        print(f"compared {len(data['comparison']['compared'])} artifacts with {args.compare}: "
              f"{len(regressions)} regressed past {data['comparison']['max_regression']:.0%}")
        for c in regressions:
            print(f"  {c.key}: p50/torch {c.before:.3f} -> {c.after:.3f} ({c.change:+.1%})")
    print(f"wrote {out / 'bench.json'}, bench.md and bench.png")


def cmd_bench(args: argparse.Namespace) -> int:
    plan = _bench_plan(args)
    limit = _percent(args.max_regression)
    baseline = _read_baseline(args.compare) if args.compare else None
    load = check_load()
    if load.is_busy:
        if args.strict:
            print(f"edgeport: refusing to benchmark: {load.describe()}", file=sys.stderr)
            return USER_ERROR
        print(f"edgeport: warning: {load.describe()}", file=sys.stderr)
    say = (lambda _: None) if args.quiet else (lambda text: print(f"  bench {text}", file=sys.stderr, flush=True))
    if args.executor == "ray":
        from edgeport.cluster.ray_runs import bench_on_ray

        data = bench_on_ray(plan, args.ray_address, args.ray_workers, say)
    else:
        data = run_bench(plan, load, say).to_dict()
    regressions: list = []
    if baseline is not None:
        compared, regressions = compare(baseline, data, limit)
        data["comparison"] = {"baseline": str(args.compare), "max_regression": limit,
                              "compared": [c.to_dict() for c in compared],
                              "regressions": [c.to_dict() for c in regressions]}
    out = args.out or plan.root
    ensure_writable(out)
    write_json(out / "bench.json", data)
    write_text(out / "bench.md", to_markdown(data))
    draw_latency_chart(data, out / "bench.png")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_bench(data, regressions, args, out)
    return 1 if regressions or any(r["status"] == "failed" for r in data["rows"]) else 0


def cmd_size(args: argparse.Namespace) -> int:
    require_manifests(args.path)
    models = collect(args.path)
    out = args.out or args.path
    ensure_writable(out)
    data = {"schema": "edgeport.size-report/1", "models": [m.to_dict() for m in models]}
    write_json(out / "size-report.json", data)
    markdown = out / "size-report.md"
    write_text(markdown, size_markdown(models))
    draw_size_chart(models, out / "size-report.png")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(table(("model", "params", "fp32 weights", "format", "recipe", "size", "vs fp32"),
                [(m.model, f"{m.params / 1e6:.2f} M", human_bytes(m.fp32_bytes), a.format, a.recipe,
                  human_bytes(a.bytes), f"{a.ratio_to_fp32:.1%}") for m in models for a in m.artifacts]))
    print(f"wrote {markdown}, size-report.json and size-report.png under {out}")
    return 0
