"""`edgeport run ARTIFACT IMAGE... [-o DIR]`: photos through an exported artifact, in its own runtime."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edgeport.errors import UsageError
from edgeport.photo.compositing import Background
from edgeport.photo.inpaint_hd import STRATEGIES
from edgeport.photo.selection import Selection
from edgeport.report import table

if TYPE_CHECKING:
    from edgeport.photo.artifact import LoadedArtifact
    from edgeport.photo.run import PhotoRun, RunOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an exported artifact on photos of any size (tiled when the model is "
                                   "fixed-size) and write the results")
    p.add_argument("artifact", type=Path, help="an artifact folder `edgeport export` wrote (holding manifest.json)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="photos (PNG, JPEG, ...)")
    p.add_argument("-o", "--out", type=Path, default=Path("edgeport-run"), help="output folder (default ./edgeport-run)")
    p.add_argument("--overlap", type=int, help="input pixels neighbouring tiles share (default: the model's)")
    p.add_argument("--margin", type=int, help="input pixels at a tile's inner edge given no weight (default: the model's)")
    p.add_argument("--max-pixels", type=int, default=2_000_000,
                   help="a flexible-size artifact runs whole up to this many input pixels, tiled above (default 2e6)")
    p.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    p.add_argument("--mask", type=Path, help="inpainting: the hole mask, white = hole (resized to the photo)")
    p.add_argument("--click", dest="clicks", type=_point, action="append", default=[], metavar="X,Y",
                   help="segmenter: a click on the object, in photo pixels (repeatable)")
    p.add_argument("--negative-click", dest="negative_clicks", type=_point, action="append", default=[],
                   metavar="X,Y", help="segmenter: a click on the background (repeatable)")
    apps = p.add_argument_group("upscale a selection", "the model only where selected; the rest of the photo "
                                "resized plainly, then kept, darkened or made white")
    apps.add_argument("--select", type=_parsed(Selection), metavar="SELECTION",
                      help="rect:X,Y,W,H | polygon:X1,Y1,X2,Y2,... | mask:FILE (white = selected) | subject[:X,Y] "
                           "(with --subject-model), in photo pixels")
    apps.add_argument("--background", type=_parsed(Background), default=Background(), metavar="HOW",
                      help="outside the selection: keep (default), darken:AMOUNT (0.6 = 60%% darker) or white")
    apps.add_argument("--feather", type=float, default=0.0, metavar="PX",
                      help="the selection's edge blends over this many photo pixels (default 0: a hard edge)")
    apps.add_argument("--subject-model", type=Path, metavar="ARTIFACT",
                      help="--select subject: a segmenter artifact (answers the click) or a saliency artifact "
                           "(its most salient region)")
    hd = p.add_argument_group("high-resolution inpainting", "an inpainting net on a photo far above its training "
                              "size (with --mask); only the hole's pixels change")
    hd.add_argument("--hd", choices=STRATEGIES, help="resize: at the model's size and back; crop: one crop per hole "
                    "region with context; shrink: rim to centre in passes; two-step: model size, then 2x on the "
                    "hole's rims")
    hd.add_argument("--passes", type=_positive, metavar="N", help="shrink: erosion passes (default 4); two-step: "
                    "shrink step 1 in N passes")
    p.add_argument("--seam-check", action="store_true",
                   help="also compare a tiled run with untiled PyTorch on a crop of the first photo (8-bit PSNR)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_run)


def _parsed(kind: type[Selection] | type[Background]) -> Callable[[str], Selection | Background]:
    def parse(text: str) -> Selection | Background:
        try:
            return kind.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a count of 1 or more; not {text!r}")
    return int(text)


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a click is X,Y in photo pixels, e.g. 320,240; not {text!r}") from None
    return x, y


def _progress(enabled: bool, name: str) -> Callable[[int, int], None]:
    """A bar redrawn in place on a terminal; a line per tenth of the tiles in a log."""
    live = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        if not enabled or total < 2 or (not live and done * 10 // total == (done - 1) * 10 // total):
            return
        bar = "#" * (24 * done // total)
        start = "\r" if live else ""
        print(f"{start}  {name}: [{bar:<24}] {done}/{total} tiles",
              end="\n" if done == total or not live else "", file=sys.stderr, flush=True)
    return show


def _selection_runs(args: argparse.Namespace, art: LoadedArtifact, options: RunOptions) -> list[PhotoRun]:
    from edgeport.photo.artifact import load_artifact
    from edgeport.photo.upscale_selection import SelectionJob, upscale_photo

    job = SelectionJob(args.select, args.background, args.feather)
    finder = load_artifact(args.subject_model, args.threads) if args.subject_model is not None else None
    return [upscale_photo(art, path, options, job, finder, _progress(not args.quiet and not args.json, path.name))
            for path in args.images]


def _hd_runs(args: argparse.Namespace, art: LoadedArtifact, options: RunOptions) -> list[PhotoRun]:
    from edgeport.photo.inpaint_hd import HdJob, check_inpainter, run_hd_inpaint
    from edgeport.photo.run import output_path

    check_inpainter(art)
    if args.mask is None:
        raise UsageError("--hd fills the holes of --mask FILE (white = hole, any size)")
    job = HdJob(args.hd, args.passes)
    return [run_hd_inpaint(art, path, args.mask, job, output_path(options, path, art, f".hd-{args.hd}"))
            for path in args.images]


def cmd_run(args: argparse.Namespace) -> int:
    from edgeport.photo.artifact import load_artifact   # the photo job: runtimes, torch for the spec
    from edgeport.photo.run import RunOptions, read_photo, run_photo, tile_plan

    missing = [str(p) for p in (*args.images, *([args.mask] if args.mask else [])) if not p.is_file()]
    if missing:
        raise UsageError(f"no such image: {', '.join(missing)}")
    options = RunOptions(args.out, args.overlap, args.margin, args.max_pixels, args.threads, args.mask,
                         (tuple(args.clicks), tuple(args.negative_clicks)))
    art = load_artifact(args.artifact, args.threads)
    if args.select is not None and args.hd is not None:
        raise UsageError("--select upscales a selection and --hd fills holes: give one of them")
    if args.select is not None:
        runs = _selection_runs(args, art, options)
    elif args.hd is not None:
        runs = _hd_runs(args, art, options)
    else:
        runs = [run_photo(art, path, options, _progress(not args.quiet and not args.json, path.name))
                for path in args.images]
    seam = None
    if args.seam_check:
        from edgeport.photo.seam_check import seam_check

        if art.spec.photo.mode != "tile" or art.spec.photo.needs:
            raise UsageError(f"{art.manifest.model.name}: the seam check runs tiled models fed by one photo alone")
        photo = read_photo(args.images[0], art.color)
        seam = seam_check(art, photo, tile_plan(art, options, art.fixed_hw or (256, 256)))
    payload = {"schema": "edgeport.run/1", "artifact": str(art.path), "model": art.manifest.model.name,
               "format": art.manifest.artifact.format, "recipe": art.manifest.recipe.name, "engine": art.runtime.engine,
               "runs": [r.to_dict() for r in runs], "seam_check": seam.to_dict() if seam else None}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(table(("photo", "size", "mode", "tiles", "seconds", "peak MiB", "written"),
                    [(r.photo, "x".join(map(str, r.input_hw)), r.mode, r.tiles, f"{r.seconds:.2f}",
                      f"{r.peak_rss_mib:.0f}", ", ".join(Path(o).name for o in r.outputs)) for r in runs]))
        print(f"{len(runs)} photo{'s' if len(runs) > 1 else ''} through {art.label} ({art.runtime.engine}) "
              f"in {sum(r.seconds for r in runs):.1f} s -> {args.out}")
        if seam:
            verdict = "pass" if seam.passed else "FAIL"
            db = "exact" if seam.to_dict()["bit_exact"] else f"{seam.psnr_db:.1f} dB"
            print(f"seam check: {seam.tiles} tiles of {seam.tile[0]}x{seam.tile[1]} (overlap {seam.overlap}, margin "
                  f"{seam.margin}) vs untiled PyTorch on a {seam.crop_hw[0]}x{seam.crop_hw[1]} crop: {db}, max 8-bit "
                  f"diff {seam.max_8bit_diff}; gate {seam.gate_db:.0f} dB: {verdict}")
    return 1 if seam is not None and not seam.passed else 0
