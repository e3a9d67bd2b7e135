"""Upscale a selection (the iOS upscaler app: Real-ESRGAN through Core ML on a rectangle, a lasso or the
subject): the model runs only on the tiles that touch the selection; outside it the photo is resized the
plain way and kept, darkened or made white; a feathered edge blends the two. The output is the whole photo at
the model's scale, streamed to its PNG in row bands.

Every tile that covers a selected pixel runs, so inside the selection the pixels are exactly those of a
whole-photo run of the same artifact (tests/test_photo_apps.py holds it to that)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from edgeport.errors import UsageError
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.compositing import Background, BandResize, blend
from edgeport.photo.png_stream import PngStream
from edgeport.photo.run import (PhotoRun, RunOptions, output_path, peak_rss_mib, picture_output, read_mask, read_photo,
                                run_tiled, tile_plan)
from edgeport.photo.selection import Selection, selection_alpha
from edgeport.photo.subject import subject_mask
from edgeport.photo.tiling import TilePlan, TileWanted
from edgeport.runtimes.artifact import sha256_file

FLEXIBLE_TILE = (256, 256)   # a flexible-size artifact is tiled too, so that only the selected tiles run
REACH = 2                    # input pixels a tile's window is grown by when asking whether it touches the selection


@dataclass(frozen=True)
class SelectionJob:
    selection: Selection
    background: Background
    feather: float


def _covering(alpha: np.ndarray, plan: TilePlan) -> TileWanted:
    """Whether a tile gives weight to a selected pixel: its window without the `margin` strips on the sides it
    shares with a neighbour (weight 0 there), grown by REACH for the output alpha's bilinear reach. A
    summed-area table answers each tile in O(1)."""
    table = np.pad((alpha > 0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = alpha.shape
    height, width = max(h, plan.tile_h), max(w, plan.tile_w)

    def wanted(y: int, x: int, th: int, tw: int) -> bool:
        y0 = max(y + (plan.margin if y > 0 else 0) - REACH, 0)
        x0 = max(x + (plan.margin if x > 0 else 0) - REACH, 0)
        y1 = min(y + th - (plan.margin if y + th < height else 0) + REACH, h)
        x1 = min(x + tw - (plan.margin if x + tw < width else 0) + REACH, w)
        if y0 >= y1 or x0 >= x1:
            return False
        return bool(table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0] > 0)
    return wanted


def check_upscaler(art: LoadedArtifact) -> None:
    if art.spec.photo.mode != "tile" or art.spec.photo.needs:
        raise UsageError(f"--select runs a picture-to-picture model (an upscaler, a denoiser); "
                         f"{art.manifest.model.name} is a {art.manifest.model.task} model")


def selection_of(job: SelectionJob, hw: tuple[int, int], given: np.ndarray | None) -> np.ndarray:
    """The alpha at the photo's size; a mask selection's file read here."""
    if job.selection.kind == "mask":
        path = job.selection.path
        if path is None or not path.is_file():
            raise UsageError(f"no such mask: {path}")
        given = read_mask(path, hw)[..., 0] > 0
    return selection_alpha(job.selection, hw, job.feather, given)


def outside_difference(art: LoadedArtifact, photo_path: Path, job: SelectionJob, picture: np.ndarray,
                       given: np.ndarray | None = None) -> int:
    """The app's own check: the largest 8-bit difference, where the selection's alpha is 0, between the output
    picture and the background formula (the photo resized bicubically, then kept, darkened or made white)."""
    photo = read_photo(photo_path, "RGB")
    out_hw = picture.shape[:2]
    alpha = BandResize(selection_of(job, photo.shape[:2], given), out_hw, Image.Resampling.BILINEAR).rows(0, out_hw[0])
    formula = np.clip(np.rint(job.background.apply(BandResize(photo, out_hw, Image.Resampling.BICUBIC).rows(
        0, out_hw[0]))), 0, 255)
    outside = alpha <= 0
    picture = picture[..., None] if picture.ndim == 2 else picture
    return int(np.abs(picture[outside].astype(np.float64) - formula[outside]).max()) if outside.any() else 0


def run_selection_upscale(art: LoadedArtifact, photo_path: Path, options: RunOptions, job: SelectionJob,
                          target: Path, given: np.ndarray | None = None,
                          on_tile: Callable[[int, int], None] = lambda done, total: None) -> PhotoRun:
    """`given`: the subject's mask at the photo's size, found by the caller's segmenter or saliency artifact."""
    start = time.perf_counter()
    check_upscaler(art)
    photo = read_photo(photo_path, art.color)
    h, w = photo.shape[:2]
    alpha = selection_of(job, (h, w), given)
    target.parent.mkdir(parents=True, exist_ok=True)
    plan = tile_plan(art, options, art.fixed_hw or FLEXIBLE_TILE)
    wanted = _covering(alpha, plan)
    ys, xs = plan.starts(max(h, plan.tile_h), plan.tile_h), plan.starts(max(w, plan.tile_w), plan.tile_w)
    total, done = sum(wanted(y, x, plan.tile_h, plan.tile_w) for y in ys for x in xs), [0]
    output = picture_output(art)
    sy, sx = output.shape[2] / art.image.shape[2], output.shape[3] / art.image.shape[3]
    out_hw = (round(h * sy), round(w * sx))
    rgb = photo[..., ::-1] if art.color == "BGR" else photo
    plain = BandResize(rgb, out_hw, Image.Resampling.BICUBIC)
    edge = BandResize(alpha, out_hw, Image.Resampling.BILINEAR)
    row = [0]
    selected_rows = np.nonzero((alpha > 0).any(axis=1))[0]
    first, last = (selected_rows[0] - REACH) * sy, (selected_rows[-1] + 1 + REACH) * sy   # output rows alpha reaches

    def composite(rows: np.ndarray) -> None:
        r0, r1 = row[0], row[0] + rows.shape[0]
        background = job.background.apply(plain.rows(r0, r1))
        if r1 <= first or r0 >= last:     # no alpha in these rows: the background alone, as blend would give
            png.write(np.clip(np.rint(background), 0, 255).astype(np.uint8))
        else:
            png.write(blend(rows, background, np.clip(edge.rows(r0, r1), 0.0, 1.0)))
        row[0] = r1

    def tick() -> None:
        done[0] += 1
        on_tile(done[0], total)
    with PngStream(target, out_hw[0], out_hw[1], output.shape[1]) as png:
        run_tiled(art, photo, plan, tick, composite, wanted)
    details = {"selection": str(job.selection), "background": str(job.background), "feather": job.feather,
               "selected_share": round(float((alpha > 0).mean()), 4), "tiles_run": total,
               "tiles_whole_photo": len(ys) * len(xs), "tile": [plan.tile_h, plan.tile_w], "output_hw": list(out_hw)}
    return PhotoRun(photo_path.name, sha256_file(photo_path), (h, w), "selection", total, (str(target),),
                    time.perf_counter() - start, peak_rss_mib(), details)


def upscale_photo(art: LoadedArtifact, photo_path: Path, options: RunOptions, job: SelectionJob,
                  finder: LoadedArtifact | None = None,
                  on_tile: Callable[[int, int], None] = lambda done, total: None) -> PhotoRun:
    """The CLI's and the API's door: a subject selection answered by `finder` (a segmenter takes the
    selection's click), the picture written beside `edgeport run`'s other outputs. The model's task is
    checked first: a subject's finder is not run for a model that cannot take a selection."""
    check_upscaler(art)
    if (finder is not None) != (job.selection.kind == "subject"):
        raise UsageError("--select subject[:X,Y] and --subject-model ARTIFACT go together" if finder is None else
                         "--subject-model answers --select subject[:X,Y]; leave it out for other selections")
    given = None
    if finder is not None:
        click = job.selection.points[0] if job.selection.points else None
        given = subject_mask(finder, read_photo(photo_path, finder.color), click)
    target = output_path(options, photo_path, art, ".selection")
    return run_selection_upscale(art, photo_path, options, job, target, given, on_tile)
