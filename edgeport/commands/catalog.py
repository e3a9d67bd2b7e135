"""`edgeport models` and `edgeport formats`: what the zoo holds and what each format applies."""
from __future__ import annotations

import argparse
import json

from edgeport.exporters.formats import all_formats
from edgeport.report import table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the zoo with params and MACs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_models)
    p = sub.add_parser("formats", help="list the formats, their runtimes and the recipes each one applies")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_formats)


def cmd_models(args: argparse.Namespace) -> int:
    from edgeport.models import all_specs   # every family module (torch)
    from edgeport.models.profile import profile_model

    rows = []
    for spec in all_specs().values():
        prof = profile_model(spec.build, [c.shape for c in spec.inputs])
        rows.append({"name": spec.name, "summary": spec.summary, "params": prof.params, "macs": prof.macs,
                     "input": [list(c.shape) for c in spec.inputs], "upstream": spec.metadata.upstream})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(("model", "params", "GMAC", "input", "summary"),
                [(r["name"], f"{r['params'] / 1e6:.2f} M", f"{r['macs'] / 1e9:.2f}",
                  " ".join("x".join(map(str, s)) for s in r["input"]), r["summary"]) for r in rows]))
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    rows = [{"name": f.name, "label": f.label, "recipes": list(f.recipes), "default_recipes": list(f.default_recipes),
             "localisation": f.tensors_engine or "not implemented", "latency_here": f.latency_unavailable() or "yes"}
            for f in all_formats().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(("format", "recipes (export precisions)", "default", "error localisation", "latency here"),
                [(r["name"], ",".join(r["recipes"]), ",".join(r["default_recipes"]), r["localisation"],
                  r["latency_here"]) for r in rows]))
    return 0
