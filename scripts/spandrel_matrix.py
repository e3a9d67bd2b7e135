"""Which spandrel architectures export to which format at fp32 with parity.

For each architecture in spandrel's core registry, builds a checkpoint from spandrel's own class with seeded
weights (reduced hyper-parameters where the defaults are large), checks spandrel detects it back, then runs
`edgeport export --weights CKPT --recipe fp32` in its own process (a converter crash cannot take the run
down) and records each format's verdict, parity and failing op. Writes matrix.json and matrix.md.

    .venv/bin/python scripts/spandrel_matrix.py --out /tmp/spandrel-matrix [--only ESRGAN,Compact]
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
from edgeport.runtimes.atomic import write_text
from export_process import run_export  # this folder: the script's own
from results_page import write_results_page

FORMATS = ("onnx", "tflite", "coreml", "executorch")
# (module under spandrel.architectures, class name, kwargs): small configs so every row runs in minutes
BUILDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ESRGAN": ("ESRGAN", "ESRGAN", {"num_filters": 32, "num_blocks": 2, "scale": 4}),
    "Compact": ("Compact", "Compact", {"num_feat": 32, "num_conv": 4, "upscale": 4}),
    "SwiftSRGAN": ("SwiftSRGAN", "SwiftSRGAN", {}),
    "SPAN": ("SPAN", "SPAN", {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 24, "upscale": 4}),
    "SAFMN": ("SAFMN", "SAFMN", {"dim": 24, "n_blocks": 2, "upscaling_factor": 4}),
    "OmniSR": ("OmniSR", "OmniSR", {}),
    "DITN": ("DITN", "DITN", {}),
    "CRAFT": ("CRAFT", "CRAFT", {}),
    "DCTLSA": ("DCTLSA", "DCTLSA", {}),
    "SeemoRe": ("SeemoRe", "SeemoRe", {}),
    "PLKSR": ("PLKSR", "PLKSR", {"dim": 32, "n_blocks": 4}),
    "RealPLKSR": ("PLKSR", "RealPLKSR", {"dim": 32, "n_blocks": 4}),
    "RealCUGAN": ("RealCUGAN", "UpCunet2x", {}),
    "SwinIR": ("SwinIR", "SwinIR", {"img_size": 64, "window_size": 8, "embed_dim": 48, "depths": [2, 2],
                                    "num_heads": [2, 2], "upscale": 4, "upsampler": "pixelshuffledirect"}),
    "Swin2SR": ("Swin2SR", "Swin2SR", {"img_size": 64, "window_size": 8, "embed_dim": 48, "depths": [2, 2],
                                       "num_heads": [2, 2], "upscale": 4, "upsampler": "pixelshuffledirect"}),
    "HAT": ("HAT", "HAT", {"img_size": 64, "window_size": 8, "embed_dim": 48, "depths": [2, 2],
                           "num_heads": [2, 2], "upscale": 4}),
    "DAT": ("DAT", "DAT", {"img_size": 64, "embed_dim": 48, "depth": [2, 2], "num_heads": [2, 2], "upscale": 4}),
    "RGT": ("RGT", "RGT", {"img_size": 64, "embed_dim": 48, "depth": [2, 2], "num_heads": [2, 2], "upscale": 4}),
    "ATD": ("ATD", "ATD", {"img_size": 64, "window_size": 8, "embed_dim": 48, "depths": [2, 2],
                           "num_heads": [2, 2], "upscale": 4}),
    "DRCT": ("DRCT", "DRCT", {"img_size": 64, "window_size": 8, "embed_dim": 48, "depths": [2, 2],
                              "num_heads": [2, 2], "upscale": 4}),
    "GRL": ("GRL", "GRL", {}),
    "RCAN": ("RCAN", "RCAN", {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 32, "scale": 4}),
    "MoSR": ("MoSR", "MoSR", {}),
    "FDAT": ("FDAT", "FDAT", {}),
    "DnCNN": ("DnCNN", "DnCNN", {}),
    "DRUNet": ("DRUNet", "DRUNet", {}),
    "SCUNet": ("SCUNet", "SCUNet", {}),
    "NAFNet": ("NAFNet", "NAFNet", {"width": 16, "enc_blk_nums": [1, 1], "middle_blk_num": 1,
                                    "dec_blk_nums": [1, 1]}),
    "KBNet": ("KBNet", "KBNet_s", {}),
    "Uformer": ("Uformer", "Uformer", {}),
    "FFTformer": ("FFTformer", "FFTformer", {"dim": 16}),
    "RetinexFormer": ("RetinexFormer", "RetinexFormer", {}),
    "HVICIDNet": ("HVICIDNet", "HVICIDNet", {}),
    "MixDehazeNet": ("MixDehazeNet", "MixDehazeNet", {}),
}
NOT_RUN = {
    "GFPGAN": "face restoration at 512x512, 86 M params: not run on this 2-core machine",
    "IPT": "115 M params with a multi-task head: not run here",
    "MMRealSR": "needs a modulation-bank config this script does not build",
    "MoESR": "16.5 M params, not run here",
    "FBCNN": "72 M params (its reduced configs are not detected back by spandrel): not run here",
    "AuraSR": "GAN upsampler with required image_size/dim settings, not built by this script",
    "SAFMNBCIE": "variant of SAFMN, not built separately",
    "LaMa": "needs torchvision (refused by edgeport: no torchvision beside torch 2.13 CPU)",
    "RestoreFormer": "needs torchvision (refused by edgeport)",
}


def build_checkpoint(arch: str, folder: Path) -> tuple[Path | None, str]:
    import torch

    from edgeport.models.spandrel_models import detect, import_spandrel

    import_spandrel()
    module_name, cls_name, kwargs = BUILDS[arch]
    try:
        cls = getattr(importlib.import_module(f"spandrel.architectures.{module_name}"), cls_name)
        torch.manual_seed(0)
        model = cls(**kwargs)
    except Exception as exc:  # noqa: BLE001  (a kwargs mismatch is a row, not a crash)
        return None, f"not built: {type(exc).__name__}: {str(exc)[:120]}"
    path = folder / f"{arch.lower()}-seeded.pth"
    torch.save(model.state_dict(), path)
    try:
        found = detect(path).architecture.id
    except Exception as exc:  # noqa: BLE001
        return None, f"spandrel did not detect it back: {str(exc)[:120]}"
    return (path, "") if found in (arch, module_name) else (None, f"detected as {found}")


def export_row(arch: str, ckpt: Path, out: Path, timeout: float, formats: str = ",".join(FORMATS)) -> dict[str, Any]:
    started = time.monotonic()
    summary, error = run_export(["--weights", str(ckpt), "--to", formats, "--recipe", "fp32",
                                 "--out", str(out), "--converter-timeout", str(timeout / 2)], timeout)
    if summary is None:
        return {"arch": arch, "error": error}
    cells = {r["format"]: {"status": r["status"], "photo_db": r.get("photo_psnr_db"),
                           "bit_exact": r.get("bit_exact"), "op": r.get("op"), "message": r["message"][:200]}
             for r in summary["rows"]}
    return {"arch": arch, "params": summary["params"], "input": summary["input_shapes"], "cells": cells,
            "seconds": round(time.monotonic() - started, 1)}


def cell_text(cell: dict[str, Any]) -> str:
    """The verdict, and for a failure the op or the reason in a few words."""
    if cell["status"] == "pass":
        return "exact" if cell.get("bit_exact") else f"pass {cell['photo_db']:.0f} dB"
    message = cell.get("message") or ""
    missing = re.search(r"MIL op '(\w+)'.* not implemented", message)
    if missing:
        return f"converted; MIL evaluator lacks `{missing.group(1)}`"
    if "Flex delegate" in message:
        return "needs TF Select ops (Flex delegate)"
    if cell.get("op"):
        return f"{cell['status']}: `{cell['op']}`"
    return f"{cell['status']}: {message.split(';')[0][:70]}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| architecture | params | " + " | ".join(FORMATS) + " |", "|---" * (len(FORMATS) + 2) + "|"]
    for r in rows:
        if "cells" in r:
            cells = [cell_text(r["cells"][f]) if f in r["cells"] else "-" for f in FORMATS]
            lines.append(f"| {r['arch']} | {r['params'] / 1e6:.2f} M | " + " | ".join(cells) + " |")
        else:
            lines.append(f"| {r['arch']} | - | " + " | ".join([r.get("error", "-")] + [""] * (len(FORMATS) - 1)) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated architecture ids")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per architecture")
    parser.add_argument("--resume", action="store_true", help="keep the rows of an earlier matrix.json in --out")
    parser.add_argument("--to", default=",".join(FORMATS), help="formats (default: all four)")
    parser.add_argument("--docs", action="store_true", help="also write docs/results/spandrel_matrix.md (date, machine, command)")
    args = parser.parse_args()
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [a for a in BUILDS if not args.only or a in args.only.split(",")]
    previous = args.out / "matrix.json"
    rows = json.loads(previous.read_text())["rows"] if args.resume and previous.is_file() else []
    rows = [r for r in rows if r["arch"] in BUILDS and not (args.only and r["arch"] in chosen)]  # --only re-runs
    done = {r["arch"] for r in rows}
    for arch in [a for a in chosen if a not in done]:
        ckpt, problem = build_checkpoint(arch, args.out)
        row = {"arch": arch, "error": problem} if ckpt is None else export_row(arch, ckpt, args.out / "artifacts",
                                                                               args.timeout, args.to)
        rows.append(row)
        print(json.dumps(row)[:400], flush=True)
        (args.out / "matrix.json").write_text(json.dumps({"rows": rows, "not_run": NOT_RUN}, indent=2))
    rows.sort(key=lambda r: list(BUILDS).index(r["arch"]))
    table = markdown(rows) + "".join(f"\nNot run: {k}: {v}." for k, v in NOT_RUN.items())
    write_text(args.out / "matrix.md", table)
    if args.docs:
        write_results_page("spandrel_matrix", table, time.monotonic() - started)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
