"""`edgeport run`: an exported artifact on photos of any size, in the artifact's own runtime.

A fixed-size restoration model is tiled (edgeport/photo/tiling.py) and its image streamed to a PNG; a flexible-size
artifact runs whole while the photo fits --max-pixels; a global task (saliency, depth) sees the photo resized
to its input and its outputs resized back (edgeport/photo/task_outputs.py writes what each task leaves).
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.errors import UsageError
from edgeport.models.samples import ImageTooLarge, decode_image
from edgeport.models.spec import TensorContract
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.png_stream import PngStream
from edgeport.photo.task_outputs import Clicks, resized_run
from edgeport.photo.tiling import TilePlan, TileWanted, tiled_rows
from edgeport.runtimes.artifact import sha256_file


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path
    overlap: int | None = None          # tiling overrides; None: the model's PhotoPolicy
    margin: int | None = None
    max_pixels: int = 2_000_000         # a flexible-size artifact runs whole up to this many input pixels
    threads: int = 2
    mask: Path | None = None            # inpainting: white = hole
    clicks: Clicks = ((), ())           # (positive, negative) clicks, (x, y) in photo pixels


@dataclass(frozen=True)
class PhotoRun:
    photo: str
    photo_sha256: str
    input_hw: tuple[int, int]
    mode: str                           # "tiled", "whole" or "resized"
    tiles: int
    outputs: tuple[str, ...]
    seconds: float
    peak_rss_mib: float                 # the process's peak resident memory so far
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"photo": self.photo, "photo_sha256": self.photo_sha256, "input_hw": list(self.input_hw),
                "mode": self.mode, "tiles": self.tiles, "outputs": list(self.outputs),
                "seconds": round(self.seconds, 3), "peak_rss_mib": round(self.peak_rss_mib, 1), **self.details}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_photo(path: Path, color: str) -> np.ndarray:
    """HxWxC uint8 in the contract's colour order, upright per its EXIF orientation."""
    try:
        arr = decode_image(path, "L" if color == "GRAY" else "RGB")
    except ImageTooLarge as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"{exc}; give a PNG, JPEG or other file Pillow reads") from None
    return np.ascontiguousarray(arr[..., ::-1] if color == "BGR" else arr)


def tile_function(art: LoadedArtifact, output: TensorContract) -> Callable[[np.ndarray], np.ndarray]:
    """1xCxhxw pixels -> the output's 1xCxHxW float pixel levels, through the artifact's runtime."""
    def run(pixels: np.ndarray) -> np.ndarray:
        return output.pixels.pixel_values(art.runtime.run(art.feed(pixels, {}))[output.name])
    return run


def tile_plan(art: LoadedArtifact, options: RunOptions, hw: tuple[int, int]) -> TilePlan:
    policy = art.spec.photo
    overlap = policy.overlap if options.overlap is None else options.overlap
    margin = policy.margin if options.margin is None else options.margin
    try:
        return TilePlan(hw[0], hw[1], overlap, margin)
    except ValueError as exc:
        raise UsageError(f"{exc}; set --overlap and --margin so that 2 x margin < overlap < tile") from None


def picture_output(art: LoadedArtifact) -> TensorContract:
    found = [c for c in art.manifest.outputs if c.pixels is not None]
    if not found:
        raise UsageError(f"{art.manifest.model.name} returns no picture ({', '.join(c.name for c in art.manifest.outputs)}); "
                         "a tiled run blends pictures")
    return found[0]


def output_path(options: RunOptions, photo: Path, art: LoadedArtifact, suffix: str) -> Path:
    m = art.manifest
    return options.out_dir / f"{photo.stem}.{m.model.name}.{m.artifact.format}-{m.recipe.name}{suffix}.png"


def _whole_plan(art: LoadedArtifact, hw: tuple[int, int]) -> TilePlan:
    """One tile covering the photo, padded up to a multiple of 16 (every zoo size rule divides it)."""
    h, w = (-(-s // 16) * 16 for s in hw)
    return TilePlan(h, w, min(h, w) // 2, 0)


def run_tiled(art: LoadedArtifact, photo: np.ndarray, plan: TilePlan, on_tile: Callable[[], None] = lambda: None,
              sink: Callable[[np.ndarray], None] | None = None,
              wanted: TileWanted | None = None) -> tuple[np.ndarray | None, tuple[float, float]]:
    """The picture output over the photo; streamed to `sink` row block by row block, or returned whole."""
    output = picture_output(art)
    scale = (output.shape[2] / art.image.shape[2], output.shape[3] / art.image.shape[3])
    blocks = []
    for rows in tiled_rows(photo, plan, scale, tile_function(art, output), output.shape[1], on_tile, wanted):
        rows = rows[..., ::-1] if output.pixels.color == "BGR" else rows
        if sink is None:
            blocks.append(rows)
        else:
            sink(rows)
    return (np.concatenate(blocks) if blocks else None), scale


def read_mask(path: Path, hw: tuple[int, int]) -> np.ndarray:
    """HxWx1 uint8, 255 in the hole: white (>= 128) pixels of the mask image, scaled to the photo."""
    from PIL import Image

    mask = read_photo(path, "GRAY")[..., 0]
    if mask.shape != hw:
        mask = np.asarray(Image.fromarray(mask).resize((hw[1], hw[0]), Image.Resampling.NEAREST))
    return np.where(mask >= 128, 255, 0).astype(np.uint8)[..., None]


def _photo_channels(art: LoadedArtifact, photo_path: Path, options: RunOptions) -> np.ndarray:
    """The photo, with the hole mask as a last channel for a model that needs one."""
    photo = read_photo(photo_path, art.color)
    if "mask" not in art.spec.photo.needs:
        return photo
    if options.mask is None:
        raise UsageError(f"{art.manifest.model.name} fills holes: give --mask FILE (white = hole, any size)")
    return np.concatenate([photo, read_mask(options.mask, photo.shape[:2])], axis=-1)


def _composited(sink: Callable[[np.ndarray], None], photo: np.ndarray) -> Callable[[np.ndarray], None]:
    """Inpainting: keep the photo's own pixels outside the hole, the model's inside, row block by block."""
    row = [0]

    def write(rows: np.ndarray) -> None:
        src = photo[row[0]:row[0] + rows.shape[0]]
        sink(np.where(src[..., 3:] >= 128, rows, src[..., :3]))
        row[0] += rows.shape[0]
    return write


def run_photo(art: LoadedArtifact, photo_path: Path, options: RunOptions,
              on_tile: Callable[[int, int], None] = lambda done, total: None) -> PhotoRun:

    start = time.perf_counter()
    photo = _photo_channels(art, photo_path, options)
    h, w = photo.shape[:2]
    options.out_dir.mkdir(parents=True, exist_ok=True)
    if art.spec.photo.mode == "resize":
        written, details = resized_run(art, photo, options.clicks,
                                       lambda suffix: output_path(options, photo_path, art, suffix))
        return PhotoRun(photo_path.name, sha256_file(photo_path), (h, w), "resized", 1, written,
                        time.perf_counter() - start, peak_rss_mib(), details)
    whole = art.fixed_hw is None and h * w <= options.max_pixels
    plan = _whole_plan(art, (h, w)) if whole else tile_plan(art, options, art.fixed_hw or (512, 512))
    total, done = plan.count(max(h, plan.tile_h), max(w, plan.tile_w)), [0]

    def tick() -> None:
        done[0] += 1
        on_tile(done[0], total)
    output = picture_output(art)
    sy, sx = output.shape[2] / art.image.shape[2], output.shape[3] / art.image.shape[3]
    target = output_path(options, photo_path, art, "")
    composite = photo.shape[-1] == 4 and (sy, sx) == (1.0, 1.0)
    with PngStream(target, round(h * sy), round(w * sx), output.shape[1]) as png:
        run_tiled(art, photo, plan, tick, _composited(png.write, photo) if composite else png.write)
    details = {"tile": [plan.tile_h, plan.tile_w], "overlap": plan.overlap, "margin": plan.margin,
               "output_hw": [round(h * sy), round(w * sx)], "composited_with_photo": composite}
    return PhotoRun(photo_path.name, sha256_file(photo_path), (h, w), "whole" if whole else "tiled", total,
                    (str(target),), time.perf_counter() - start, peak_rss_mib(), details)
