"""High-resolution inpainting (GMCNN, partial conv) for photos far above the nets' training size, four ways
(`edgeport run ART PHOTO --mask M --hd resize|crop|shrink|two-step`):

- resize: the photo and hole down to the model's size, inpainted, the result back up; hole pixels pasted.
- crop: one crop per connected hole region with context around it (IOPaint's default), each inpainted at the
  model's size and pasted back.
- shrink: the hole filled from its rim to its centre (quality drops toward the centre of large holes): the
  mask is eroded step by step until empty and each pass re-inpaints the previous result under the eroded
  mask, at the model's size; `--passes N` (default 4), the erosion per pass from the hole's depth.
- two-step: step 1 inpaints at the model's size (with shrink when asked); step 2 upscales that 2x per side,
  pastes its generated pixels into an equally sized downscale of the photo, and inpaints again (tiled) under
  the original mask minus its erosion (small holes and the rims of large ones); back to full size, pasted.

In every strategy the pixels outside the hole are the photo's, byte for byte."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgeport.errors import UsageError
from edgeport.parity_tests.metrics import eight_bit_psnr
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.png_stream import write_png
from edgeport.photo.run import PhotoRun, peak_rss_mib, read_mask, read_photo, run_tiled
from edgeport.photo.tiling import TilePlan
from edgeport.runtimes.artifact import sha256_file
from edgeport.runtimes.json_numbers import db_for_json

STRATEGIES = ("resize", "crop", "shrink", "two-step")
CROP_CONTEXT = 0.5    # of the hole region's larger side, added around it (at least 32 px) for a crop's context
DEFAULT_PASSES = 4    # the shrinking-mask blog's count


@dataclass(frozen=True)
class HdJob:
    strategy: str
    passes: int | None = None    # shrink: erosion passes (default 4); two-step: step 1 shrinks when given

    @property
    def shrink_passes(self) -> int:
        """How many passes step 1 takes at the model's size: 1 is a plain inpaint."""
        if self.strategy == "shrink":
            return self.passes or DEFAULT_PASSES
        if self.strategy == "two-step":
            return self.passes or 1
        return 1


def check_inpainter(art: LoadedArtifact) -> tuple[int, int]:
    """The model's input size; refuses a model that does not fill holes."""
    if "mask" not in art.spec.photo.needs:
        raise UsageError(f"--hd fills holes at high resolution; {art.manifest.model.name} is a "
                         f"{art.manifest.model.task} model, not an inpainting one")
    return art.fixed_hw or tuple(art.image.shape[2:])


def _resized(image: np.ndarray, hw: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    out = np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), resample))
    return out.reshape(hw + image.shape[2:])


def _resized_mask(hole: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A hole mask resized so that no hole pixel is lost: any coverage counts (box filter, > 0)."""
    return _resized(hole.astype(np.uint8) * 255, hw, Image.Resampling.BOX) > 0


def inpaint_at(art: LoadedArtifact, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The model on an HxWx3 image of any size (one tile at the model's size, tiled above it), its output kept
    only in the hole."""
    model_hw = check_inpainter(art)
    h, w = image.shape[:2]
    size = (max(h, model_hw[0]), max(w, model_hw[1]))
    plan = (TilePlan(model_hw[0], model_hw[1], min(model_hw) // 4, min(model_hw) // 16)
            if size != model_hw else TilePlan(model_hw[0], model_hw[1], min(model_hw) // 2, 0))
    channels = np.concatenate([image, np.where(hole, 255, 0).astype(np.uint8)[..., None]], axis=-1)
    filled, _ = run_tiled(art, channels, plan)
    return np.where(hole[..., None], filled, image)


def _depth(hole: np.ndarray) -> np.ndarray:
    """Each hole pixel's distance to the nearest known pixel (0 outside the hole): erosion by r keeps > r."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(hole)


def _shrinking(art: LoadedArtifact, image: np.ndarray, hole: np.ndarray, passes: int) -> np.ndarray:
    """Pass k inpaints under the hole eroded k times (depth / passes each): rim first, centre last."""
    depth = _depth(hole)
    step = float(depth.max()) / passes
    result, current = image, hole
    for k in range(passes):
        if not current.any():
            break
        result = inpaint_at(art, result, current)
        current = depth > step * (k + 1)
    return np.where(hole[..., None], result, image)


def _at_model_size(art: LoadedArtifact, photo: np.ndarray, hole: np.ndarray, job: HdJob) -> np.ndarray:
    """The photo and hole at the model's size, inpainted (shrinking when asked)."""
    model_hw = check_inpainter(art)
    small, small_hole = _resized(photo, model_hw, Image.Resampling.LANCZOS), _resized_mask(hole, model_hw)
    if job.shrink_passes > 1:
        return _shrinking(art, small, small_hole, job.shrink_passes)
    return inpaint_at(art, small, small_hole)


def _two_step(art: LoadedArtifact, photo: np.ndarray, hole: np.ndarray, job: HdJob) -> np.ndarray:
    model_hw = check_inpainter(art)
    first = _at_model_size(art, photo, hole, job)
    double = (min(2 * model_hw[0], photo.shape[0]), min(2 * model_hw[1], photo.shape[1]))
    base, double_hole = _resized(photo, double, Image.Resampling.LANCZOS), _resized_mask(hole, double)
    seeded = np.where(double_hole[..., None], _resized(first, double, Image.Resampling.BICUBIC), base)
    rim_width = max(2.0, min(model_hw) / 32)
    rim = double_hole & (_depth(double_hole) <= rim_width)   # the mask minus its erosion
    return inpaint_at(art, seeded, rim) if rim.any() else seeded


def _regions(hole: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (y0, x0, y1, x1) of the hole's connected regions."""
    from scipy.ndimage import find_objects, label

    labels, _ = label(hole)
    return [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in find_objects(labels) if s is not None]


def _context_box(box: tuple[int, int, int, int], aspect: float, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region grown by CROP_CONTEXT on every side, widened to the model's aspect, kept in the photo."""
    y0, x0, y1, x1 = box
    grow = max(32, round(CROP_CONTEXT * max(y1 - y0, x1 - x0)))
    h, w = min(y1 - y0 + 2 * grow, hw[0]), min(x1 - x0 + 2 * grow, hw[1])
    if w / h < aspect:
        w = min(round(h * aspect), hw[1])
    else:
        h = min(round(w / aspect), hw[0])
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    top, left = min(max(cy - h // 2, 0), hw[0] - h), min(max(cx - w // 2, 0), hw[1] - w)
    return top, left, top + h, left + w


def _cropped(art: LoadedArtifact, photo: np.ndarray, hole: np.ndarray) -> np.ndarray:
    model_hw = check_inpainter(art)
    result = photo.copy()
    for box in _regions(hole):
        top, left, bottom, right = _context_box(box, model_hw[1] / model_hw[0], hole.shape)
        crop, crop_hole = result[top:bottom, left:right], hole[top:bottom, left:right]
        filled = inpaint_at(art, _resized(crop, model_hw, Image.Resampling.LANCZOS), _resized_mask(crop_hole, model_hw))
        back = _resized(filled, crop.shape[:2], Image.Resampling.BICUBIC)
        result[top:bottom, left:right] = np.where(crop_hole[..., None], back, crop)
    return result


def inpaint_hd(art: LoadedArtifact, photo: np.ndarray, hole: np.ndarray, job: HdJob) -> np.ndarray:
    """HxWx3 uint8 photo, HxW bool hole -> the photo with only the hole filled."""
    if job.strategy == "crop":
        filled = _cropped(art, photo, hole)
    else:
        small = _two_step(art, photo, hole, job) if job.strategy == "two-step" else _at_model_size(art, photo, hole, job)
        filled = _resized(small, photo.shape[:2], Image.Resampling.BICUBIC)
    return np.where(hole[..., None], filled, photo)


def run_hd_inpaint(art: LoadedArtifact, photo_path: Path, mask_path: Path, job: HdJob, target: Path) -> PhotoRun:
    """`edgeport run ART PHOTO --mask M --hd STRATEGY`: the filled photo at full size, written atomically."""
    start = time.perf_counter()
    model_hw = check_inpainter(art)
    photo = read_photo(photo_path, art.color)
    hole = read_mask(mask_path, photo.shape[:2])[..., 0] > 0
    if not hole.any():
        raise UsageError(f"the mask {mask_path} has no hole (white = hole); nothing to fill")
    if hole.all():
        raise UsageError(f"the mask {mask_path} covers the whole photo: an inpainting net needs pixels around the hole")
    filled = inpaint_hd(art, photo, hole, job)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_png(target, filled[..., ::-1] if art.color == "BGR" else filled)
    details = {"hd": job.strategy, "passes": job.shrink_passes, "model_input_hw": list(model_hw),
               "hole_share": round(float(hole.mean()), 4), "hole_regions": len(_regions(hole))}
    return PhotoRun(photo_path.name, sha256_file(photo_path), photo.shape[:2], f"hd-{job.strategy}", 0,
                    (str(target),), time.perf_counter() - start, peak_rss_mib(), details)


def hole_measures(photo: np.ndarray, hole: np.ndarray, got: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The inpainting app's own figures: 8-bit PSNR inside the hole against the reference pipeline's picture,
    and how many pixels outside the hole differ from the photo (0: byte for byte)."""
    return {"hole_psnr_db": db_for_json(eight_bit_psnr(reference[hole], got[hole])),
            "outside_changed_pixels": int((got[~hole] != photo[~hole]).any(-1).sum())}
