"""What `edgeport run` leaves for a global task: the photo resized to the model's input, each output resized
back to the photo and written the way a person looks at it: a picture as PNG, a saliency map as a heatmap
over the photo with its best crops boxed, depth as a 16-bit PNG (near = bright), anything else as .npy."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.errors import UsageError
from edgeport.parity_tests.figures import heat_colours
from edgeport.photo.png_stream import write_png
from edgeport.models.spec import TensorContract
from edgeport.photo.artifact import LoadedArtifact
from edgeport.runtimes.atomic import atomic_file

Clicks = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]   # (positive, negative) (x, y)

CROP_ASPECTS = {"1:1": 1.0, "4:5": 0.8, "16:9": 16 / 9}


def resized_values(values: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """1x1xhxw float -> HxW float, bilinear."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(values, np.float32)[0, 0]).resize((hw[1], hw[0]),
                                                                                  Image.Resampling.BILINEAR))


def _draw_box(image: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x, y, w, h = box
    t = max(2, min(image.shape[:2]) // 200)
    for sl in ((slice(y, y + t), slice(x, x + w)), (slice(y + h - t, y + h), slice(x, x + w)),
               (slice(y, y + h), slice(x, x + t)), (slice(y, y + h), slice(x + w - t, x + w))):
        image[sl] = colour


def saliency_view(photo: np.ndarray, saliency: np.ndarray) -> tuple[np.ndarray, dict[str, list[int]]]:
    from edgeport.models.saliency import smart_crop

    peak = float(saliency.max())
    unit = saliency / peak if peak > 0 else np.zeros_like(saliency)
    view = (0.45 * photo[..., :3] + 0.55 * heat_colours(unit)).astype(np.uint8)
    crops = {}
    for (name, aspect), colour in zip(CROP_ASPECTS.items(), ((0, 255, 255), (0, 255, 0), (255, 0, 255))):
        box = tuple(int(v) for v in smart_crop(saliency, aspect))
        crops[name] = list(box)
        _draw_box(view, box, colour)
    return view, crops


def depth_png(depth: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """16-bit, nearest = 65535; the metric range goes in the run's JSON."""
    lo, hi = float(depth.min()), float(depth.max())
    unit = (hi - depth) / (hi - lo) if hi > lo else np.zeros_like(depth)
    return np.rint(unit * 65535).astype(np.uint16), {"depth_min": lo, "depth_max": hi}


def _clicks_in_input(clicks: Clicks, hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[list, list]:
    """(x, y) photo pixels -> (y, x) input pixels, positive and negative."""
    sy, sx = input_hw[0] / hw[0], input_hw[1] / hw[1]
    return tuple([(y * sy, x * sx) for x, y in side] for side in clicks)


def _fitted(photo: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """The photo resized to the model's input, 1xCxhxw uint8."""
    from PIL import Image

    rgb = photo[..., 0] if photo.shape[-1] == 1 else photo
    fitted = np.asarray(Image.fromarray(rgb).resize((input_hw[1], input_hw[0]), Image.Resampling.BICUBIC))
    fitted = fitted[..., None] if fitted.ndim == 2 else fitted
    return np.ascontiguousarray(fitted.transpose(2, 0, 1)[None])


def _output_image(art: LoadedArtifact, contract: TensorContract, value: np.ndarray, photo: np.ndarray,
                  details: dict) -> tuple[np.ndarray | None, str]:
    """What to write for one output at the photo's size, and the file's suffix; None: not an image."""
    from PIL import Image

    h, w = photo.shape[:2]
    task = art.manifest.model.task
    if contract.pixels is not None:
        pixels = contract.pixels.to_pixels(value)[0].transpose(1, 2, 0)
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        return np.asarray(image.resize((w, h), Image.Resampling.BICUBIC)), f".{contract.name}"
    if value.shape[1] != 1 or task not in ("saliency", "depth", "segment"):
        return None, f".{contract.name}"
    resized = resized_values(value, (h, w))
    if task == "saliency":
        out, details["crops"] = saliency_view(photo, resized)
        return out, ".saliency"
    if task == "depth":
        out, found = depth_png(resized)
        details.update(found)
        return out, ".depth"
    details["mask_share"] = round(float((resized > 0.5).mean()), 4)
    return np.where(resized > 0.5, 255, 0).astype(np.uint8), ".mask"   # foreground probability at 0.5


def model_outputs(art: LoadedArtifact, photo: np.ndarray, clicks: Clicks) -> dict[str, np.ndarray]:
    """The artifact's outputs (contract values) on the photo resized to its input, clicks mapped there."""
    input_hw = tuple(art.image.shape[2:])
    extras: dict[str, Any] = {}
    if "clicks" in art.spec.photo.needs:
        if not clicks[0]:
            raise UsageError(f"{art.manifest.model.name} segments what you click: give --click X,Y on the object")
        extras["clicks"] = _clicks_in_input(clicks, photo.shape[:2], input_hw)
    return art.runtime.run(art.feed(_fitted(photo, input_hw), extras))


def resized_run(art: LoadedArtifact, photo: np.ndarray, clicks: Clicks,
                path_for: Callable[[str], Path]) -> tuple[tuple[str, ...], dict]:

    input_hw = tuple(art.image.shape[2:])
    got = model_outputs(art, photo, clicks)
    written, details = [], {"model_input_hw": list(input_hw)}
    for contract in art.manifest.outputs:
        out, suffix = _output_image(art, contract, got[contract.name], photo[..., :3], details)
        if out is None:
            path = path_for(suffix).with_suffix(".npy")
            with atomic_file(path) as fh:
                np.save(fh, got[contract.name])
        else:
            path = path_for(suffix)
            write_png(path, out)
        written.append(str(path))
    return tuple(written), details
