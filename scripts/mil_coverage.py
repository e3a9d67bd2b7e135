"""Which MIL ops Core ML's converter emits for the op corpus, and whether edgeport's MIL evaluator covers them.

Converts every case of models/corpus/ops.py through edgeport's Core ML exporter at fp32 and fp16 compute
precision, reads each saved program's ops back, runs the program in the MIL evaluator where it can and compares
with PyTorch. Writes coverage.json, coverage.md (README's table) and cases.md to --out; prints a summary.
Exit 1 when an emitted op is not implemented, a case fails its bar, or the converter's refusals drift from
CONVERTER_REFUSES.

    .venv/bin/python scripts/mil_coverage.py --out /tmp/mil-coverage [--only gelu,sdpa] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from results_page import write_results_page  # this folder: the script's own

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "mil-coverage")
    parser.add_argument("--only", help="comma-separated case names (default: the whole corpus)")
    parser.add_argument("--precision", default="fp32,fp16")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--docs", action="store_true", help="also write docs/results/mil_coverage.md (date, machine, command)")
    args = parser.parse_args(argv)

    from edgeport.runtimes.atomic import write_text
    from edgeport.models.corpus.ops import CONVERTER_REFUSES, OP_CASES
    from edgeport.parity_tests.mil_coverage import (cases_markdown, coverage_markdown, coverage_report, judge_case,
                                           refusal_drift)

    wanted = set(args.only.split(",")) if args.only else None
    cases = [c for c in OP_CASES if wanted is None or c.name in wanted]
    if wanted and len(cases) != len(wanted):
        unknown = sorted(wanted - {c.name for c in cases})
        print(f"error: no op case named {', '.join(unknown)} (see models/corpus/ops.py)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    quiet = args.json
    report = coverage_report(cases, tuple(args.precision.split(",")), root=args.out,
                             progress=(lambda line: None) if quiet else (lambda line: print(f"  {line}", flush=True)))
    failures = [f"{r.case}@{r.precision}: {why}" for r in report.results if (why := judge_case(r))]
    drift = refusal_drift(report, CONVERTER_REFUSES)
    write_text(args.out / "coverage.json", json.dumps(report.to_dict(), indent=1))
    write_text(args.out / "coverage.md", coverage_markdown(report))
    write_text(args.out / "cases.md", cases_markdown(report))
    if args.docs:
        write_results_page("mil_coverage", coverage_markdown(report), time.monotonic() - started)
    summary = {"cases": len(cases), "programs": len(report.results), "emitted_ops": len(report.emitted()),
               "uncovered_ops": report.uncovered(), "coverage_percent": round(report.coverage_percent(), 1),
               "refused_by_converter": sorted({r.case for r in report.results if not r.converted}),
               "failing_cases": failures, "refusal_drift": drift, "seconds": round(time.monotonic() - started, 1),
               "out": str(args.out)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_summary(summary)
    return 1 if summary["uncovered_ops"] or failures or drift else 0


def _print_summary(s: dict) -> None:
    rows = [("corpus cases", s["cases"]), ("programs converted and read", s["programs"]),
            ("MIL ops emitted", s["emitted_ops"]), ("evaluator coverage", f"{s['coverage_percent']}%"),
            ("ops not implemented", ", ".join(s["uncovered_ops"]) or "none"),
            ("cases the converter refuses", len(s["refused_by_converter"])),
            ("cases failing their bar", len(s["failing_cases"])), ("seconds", s["seconds"])]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    for line in s["failing_cases"] + s["refusal_drift"]:
        print(f"  ! {line}")
    print(f"tables: {s['out']}/coverage.md, {s['out']}/cases.md")


if __name__ == "__main__":
    sys.exit(main())
