"""`edgeport weights`: the official release files edgeport knows, and which are cached or installed here."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edgeport.errors import UsageError
from edgeport.models.weights import weights_dir
from edgeport.report import human_bytes, table

if TYPE_CHECKING:
    from edgeport.models.spec import ModelSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="official weights per model: URL, sha256, license, and what is cached here; "
                                       "`weights fetch MODEL` downloads and verifies one")
    p.add_argument("action", nargs="?", choices=("list", "fetch", "verify"), default="list",
                   help="list (default); fetch MODEL: download and verify; verify MODEL: run the model read from "
                        "its ncnn release files and the ncnn runtime on the same photos, and compare")
    p.add_argument("model", nargs="?", help="the model whose official weights to fetch or verify")
    p.add_argument("--size", type=int, default=64, help="verify: photo side in pixels (default 64)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from edgeport.models import all_specs, get_spec

    if args.action in ("fetch", "verify"):
        if not args.model:
            raise UsageError(f"name the model: edgeport weights {args.action} MODEL")
        if args.action == "verify":
            return _verify(get_spec(args.model), args.size, args.json)
        return _fetch(get_spec(args.model), args.json)
    if args.model:
        raise UsageError("`edgeport weights` lists every model; to download one: edgeport weights fetch MODEL")
    from edgeport.models.official import weights_table

    rows = weights_table(all_specs())
    if args.json:
        print(json.dumps({"schema": "edgeport.weights/1", "cache": str(weights_dir()), "files": rows}, indent=2))
        return 0

    print(table(("model", "file", "size", "sha256", "here", "license", "from"), [
        (r["model"], r["file"] or "-", human_bytes(r["bytes"]) if r.get("bytes") else "-",
         (r["sha256"] or "none published")[:16], "yes" if r["present"] else "-", r["license"] or "-", r["where"])
        for r in rows]))
    for note in sorted({(r["model"], r["note"]) for r in rows if r.get("note")}):
        print(f"{note[0]}: {note[1]}")
    print(f"cache: {weights_dir()} ($EDGEPORT_WEIGHTS_DIR, $EDGEPORT_CACHE or $XDG_CACHE_HOME); "
          "`edgeport export MODEL --weights official` uses these")
    return 0


def _fetch(spec: ModelSpec, as_json: bool) -> int:
    from edgeport.models.official import resolve_official

    def progress(got: int, total: int | None) -> None:
        if not as_json and sys.stderr.isatty():
            of = f" of {total / 1e6:.1f}" if total else ""
            print(f"\r  download {got / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)

    found = resolve_official(spec, progress)
    if as_json:
        print(json.dumps({"model": spec.name, "path": str(found.path), "sha256": found.sha256,
                          "origin": found.origin, "companions": dict(found.companions)}, indent=2))
    else:
        print(f"{spec.name}: {found.path}\n  sha256 {found.sha256}\n  {found.origin}")
    return 0


def _verify(spec: ModelSpec, size: int, as_json: bool) -> int:
    from edgeport.parity_tests.ncnn_agreement import NCNN_GATE_DB, ncnn_agreement
    from edgeport.runtimes.ncnn_runner import ncnn_version

    rows = ncnn_agreement(spec, size)
    ok = all(r["psnr_db"] >= NCNN_GATE_DB for r in rows)
    engine = f"ncnn {ncnn_version()} (CPU, fp32 arithmetic)"
    if as_json:
        print(json.dumps({"model": spec.name, "engine": engine, "gate_db": NCNN_GATE_DB, "ok": ok, "photos": rows},
                         indent=2))
    else:

        print(table(("photo", "PSNR dB", "max abs"), [(r["photo"], f"{r['psnr_db']:.1f}", f"{r['max_abs']:.2e}")
                                                       for r in rows]))
        print(f"{spec.name}: weights read from the ncnn files vs {engine} at {size}x{size}: "
              f"{'agree' if ok else 'DISAGREE'} (gate {NCNN_GATE_DB:g} dB)")
    return 0 if ok else 1
