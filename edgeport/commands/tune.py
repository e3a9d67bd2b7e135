"""`edgeport tune`: the compression trade-off of one model, measured.

Exports the recipe ladder to each format (parity in the real runtimes), times every artifact in its runtime
(benchmarks/, one worker process at a time, the runtimes' kernel peaks beside), and prints size, p50, PSNR and
the task metric per row, with whether int8 beats fp32 on this CPU, and a Pareto chart (tune.png).
"""
from __future__ import annotations

import argparse
import json
import sys

from edgeport.benchmarks.latency import BenchPlan, run_bench
from edgeport.benchmarks.machine import check_load
from edgeport.commands.args import csv_list, local_output, plan_from_args, source_arguments
from edgeport.errors import UsageError
from edgeport.progress import Progress
from edgeport.runtimes.atomic import write_json, write_text
from edgeport.tune.ladder import LADDER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="the compression trade-off of one model: the recipe ladder exported, checked "
                                    "and timed, with size, p50, PSNR and task metric per row and a Pareto chart")
    source_arguments(p)
    p.add_argument("--recipe", dest="recipes", type=csv_list, default=None, metavar="LIST",
                   help=f"the ladder (default: {','.join(LADDER)})")
    p.add_argument("--threads", type=int, default=2, help="threads for the latency rows (default 2)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per artifact after warm-up (default 10)")
    p.set_defaults(handler=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from edgeport.export.isolation import run_export   # the export pipeline: torch
    from edgeport.tune.chart import draw_pareto
    from edgeport.tune.ladder import int8_verdicts, machine_text, pareto, timing_spread, tune_markdown, tune_rows
    from edgeport.tune.ladder import tune_table

    if bool(args.model) == bool(args.custom):
        raise UsageError("tune one model: a zoo MODEL or --model FILE.py:FACTORY (with --input)")
    if args.threads < 1 or args.runs < 1:
        raise UsageError("--threads and --runs must be >= 1")
    local_output(args)
    plan = plan_from_args(args, args.model or args.custom, tuple(args.recipes or LADDER))
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
    write_text(root / "tune.md", tune_markdown(data, rows, front))
    draw_pareto(summary.model, rows, root / "tune.png")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"\n{summary.model} ({summary.source}); {machine_text(bench['machine'])}; {args.threads} threads")
        print(tune_table(rows, front))
        for line in data["int8_vs_fp32"] + data["timing_noise"]:
            print(f"  {line}")
        print(f"  * on the size/PSNR Pareto front of its format; chart: {root / 'tune.png'}")
    return summary.exit_code
