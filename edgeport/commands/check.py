"""`edgeport check`: parity re-run on artifacts already on disk; the CI gate (non-zero exit when one fails)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgeport.commands.args import require_manifests
from edgeport.progress import Progress
from edgeport.report import check_markdown, export_table, problems
from edgeport.runtimes.atomic import write_text

if TYPE_CHECKING:
    from edgeport.parity_tests.gate import ArtifactCheck


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="re-run parity on existing artifacts; non-zero exit when a gate fails")
    p.add_argument("path", nargs="?", type=Path, default=Path("artifacts"), help="artifact folder or root")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report for CI")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the worst-sample pictures (check-parity.png per artifact, check-report.md)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=cmd_check)


def _check_row(c: "ArtifactCheck") -> dict[str, object]:
    return {"model": c.model, "format": c.format, "recipe": c.recipe, "route": c.route, "bytes": c.bytes,
            "worst_psnr_db": c.report.worst_psnr_db if c.report.samples else None, "bit_exact": c.report.bit_exact,
            "photo_psnr_db": c.report.photo_db, "noise_psnr_db": c.report.noise_db, "gated_on": c.report.gate.samples,
            "photo_max_8bit_diff": c.report.photo_max_8bit, "finite": c.report.finite,
            "engine": c.report.engine, "status": c.report.status, "message": c.report.message, "op": None}


def cmd_check(args: argparse.Namespace) -> int:
    from edgeport.parity_tests.gate import CHECK_FIGURE, ReferenceCache, check_artifact  # runtimes, torch
    from edgeport.parity_tests.junit import write_junit

    manifests = require_manifests(args.path)
    progress = Progress(total=len(manifests), enabled=not args.quiet)
    cache = ReferenceCache()
    checks = []
    for path in manifests:
        with progress.step(f"check {path.parent}"):
            checks.append(check_artifact(path, cache, figure=not args.no_figures))
    if args.junit:
        write_junit(args.junit, checks)
    rows = [_check_row(c) for c in checks]
    failed = sum(not c.report.passed for c in checks)
    if not args.no_figures:
        root = args.path if args.path.is_dir() else args.path.parent
        write_text(root / "check-report.md", check_markdown(rows, root, [c.path for c in checks], CHECK_FIGURE))
    if args.json:
        print(json.dumps({"schema": "edgeport.check/2", "ok": failed == 0,
                          "artifacts": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(export_table(rows))
        for line in problems(rows):
            print(f"  {line}")
        print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0
