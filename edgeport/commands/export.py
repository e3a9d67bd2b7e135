"""`edgeport export`: models to each format and recipe, checked in each runtime, in this process or on Ray."""
from __future__ import annotations

import argparse
import json
import time

from edgeport.commands.args import csv_list, executor_arguments, export_targets, local_output, plan_from_args
from edgeport.commands.args import source_arguments
from edgeport.progress import Progress
from edgeport.report import export_table, human_bytes, problems


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model and check parity in each runtime")
    source_arguments(p)
    p.add_argument("--all", action="store_true", help="export every zoo model at its default size")
    p.add_argument("--recipe", "--precision", dest="recipes", type=csv_list, default=None, metavar="LIST",
                   help="comma-separated recipes, e.g. fp32,fp16,w8,w8a8,prune50+w8a8 (default: each format's own; "
                        "`edgeport formats` lists them); a format without a recipe gets a 'not supported' row")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic height/width (ONNX, Core ML)")
    executor_arguments(p, "each model x format x recipe as one Ray task (pip install edgeport[ray])")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    plans = [plan_from_args(args, model, args.recipes) for model in export_targets(args)]
    if args.executor == "ray":
        from edgeport.cluster.ray_runs import export_on_ray   # the export pipeline: torch and the converters

        summaries = export_on_ray(plans, args.out, args.ray_address, args.ray_workers, args.quiet)
    else:
        from edgeport.export.isolation import run_export   # the export pipeline: torch

        local_output(args)
        summaries = [run_export(plan, Progress(enabled=not args.quiet)) for plan in plans]
    rows = [r for s in summaries for r in s.to_dict()["rows"]]
    if args.json:
        payload = summaries[0].to_dict() if len(summaries) == 1 else {
            "schema": "edgeport.export-all/1", "ok": all(s.exit_code == 0 for s in summaries),
            "models": [s.to_dict() for s in summaries]}
        print(json.dumps(payload, indent=2))
    else:
        print()
        for s in summaries:
            print(f"{s.model}: {s.params / 1e6:.2f} M params, {s.macs / 1e9:.2f} GMAC at "
                  f"{' '.join('x'.join(map(str, shape)) for shape in s.input_shapes)}; source: {s.source}")
        print(export_table(rows))
        for line in problems(rows):
            print(f"  {line}")
        for s in summaries:     # rows run in this process (a model object that does not pickle); a full disk
            for note in ([s.isolation] if s.isolation != "process" else []) + ([s.unwritten] if s.unwritten else []):
                print(f"  {s.model}: {note}")
        total = sum(r.bytes for s in summaries for r in s.rows)
        ok = sum(not r.failed for s in summaries for r in s.rows)
        print(f"{ok}/{len(rows)} ok, {human_bytes(total)} written under {args.out} in "
              f"{time.perf_counter() - started:.0f} s")
    return max(s.exit_code for s in summaries)
