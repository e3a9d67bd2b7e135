"""The architecture corpus (models/corpus/architectures.py) through every format and recipe, as a team would
run its own model: `edgeport export --model models/corpus/architectures.py:NAME --input 1x3x64x64`, one process
per architecture. Writes matrix.json and matrix.md (architecture x format x recipe: verdict, worst dB, engine).

    .venv/bin/python scripts/architecture_matrix.py --out /tmp/arch-matrix [--only resnet18,unet]
        [--to onnx,tflite,coreml,executorch] [--recipe fp32,fp16,w8a8]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
from export_process import run_export
from results_page import write_results_page

CORPUS_FILE = "models/corpus/architectures.py"
FORMATS = ("onnx", "tflite", "coreml", "executorch")
RECIPES = ("fp32", "fp16", "w8a8")


def architecture_row(name: str, formats: str, recipes: str, out: Path, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    summary, error = run_export(["--model", f"{CORPUS_FILE}:{name}", "--input", "1x3x64x64", "--to", formats,
                                 "--recipe", recipes, "--out", str(out), "--converter-timeout", str(timeout / 2)],
                                timeout)
    if summary is None:
        return {"arch": name, "error": error}
    cells = {f"{r['format']}/{r['recipe']}": {
        "status": r["status"], "worst_db": r.get("worst_psnr_db"), "bit_exact": r.get("bit_exact"),
        "engine": r.get("engine"), "op": r.get("op"), "message": (r.get("message") or "")[:240],
        "vs_fp32_db": r.get("vs_fp32_artifact_db")} for r in summary["rows"]}
    return {"arch": name, "params": summary["params"], "cells": cells, "seconds": round(time.monotonic() - started, 1)}


def cell_text(cell: dict[str, Any] | None) -> str:
    """Worst dB over the samples; a parity failure adds the gated sample that failed, an error its reason."""
    if cell is None:
        return "-"
    if cell["status"] == "unsupported":
        return "not supported"
    db = "exact" if cell.get("bit_exact") else (f"{cell['worst_db']:.1f}" if cell.get("worst_db") is not None
                                                 else "")
    if cell["status"] == "pass":
        return db
    failed = re.match(r"(?:photo|random):([\w.-]+)/(\w+): ([\d.]+) dB < ([\d.]+) dB", cell["message"])
    if cell["status"] == "parity-fail" and failed:
        return f"**fail** {db} ({failed[1]} {failed[3]} < {failed[4]})"
    reason = f"`{cell['op']}`" if cell.get("op") else cell["message"].split(";")[0][:60]
    return f"**{cell['status']}** {db} ({reason})".replace("  ", " ")


def markdown(rows: list[dict[str, Any]], formats: list[str], recipes: list[str]) -> str:
    """One table per recipe: architectures down, formats across; worst dB over the parity samples."""
    out = []
    for recipe in recipes:
        out += [f"\n**{recipe}** (worst PSNR over the parity samples, dB)\n",
                "| architecture | params | " + " | ".join(formats) + " |", "|---" * (len(formats) + 2) + "|"]
        for r in rows:
            if "cells" not in r:
                out.append(f"| {r['arch']} | - | {r['error']} |" + " |" * (len(formats) - 1))
                continue
            cells = [cell_text(r["cells"].get(f"{f}/{recipe}")) for f in formats]
            out.append(f"| {r['arch']} | {r['params'] / 1e3:.0f} k | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> int:
    from edgeport.runtimes.atomic import write_text
    from edgeport.models.corpus.architectures import ARCHITECTURES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated architecture names")
    parser.add_argument("--to", default=",".join(FORMATS))
    parser.add_argument("--recipe", default=",".join(RECIPES))
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per architecture")
    parser.add_argument("--table-only", action="store_true", help="re-draw matrix.md from --out's matrix.json")
    parser.add_argument("--docs", action="store_true", help="also write docs/results/architecture_matrix.md (date, machine, command)")
    args = parser.parse_args()
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [a for a in ARCHITECTURES if not args.only or a in args.only.split(",")]
    rows = json.loads((args.out / "matrix.json").read_text())["rows"] if args.table_only else []
    for name in [] if args.table_only else chosen:
        rows.append(architecture_row(name, args.to, args.recipe, args.out / "artifacts", args.timeout))
        print(json.dumps(rows[-1])[:300], flush=True)
        write_text(args.out / "matrix.json", json.dumps({"rows": rows}, indent=1))
    table = markdown(rows, args.to.split(","), args.recipe.split(","))
    write_text(args.out / "matrix.md", table)
    if args.docs:
        write_results_page("architecture_matrix", table, time.monotonic() - started)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
