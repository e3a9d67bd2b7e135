"""What `edgeport run` leaves for a global task: the photo resized to the model's input, each output resized
back to the photo and written the way a person looks at it: a picture as PNG, a saliency map as a heatmap
over the photo with its best crops boxed, depth as a 16-bit PNG (near = bright), anything else as .npy."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

CROP_ASPECTS = {"1:1": 1.0, "4:5": 0.8, "16:9": 16 / 9}


def _resized_values(values: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
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
    from models.saliency import smart_crop
    from parity_tests.figures import heat_colours

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


def resized_run(art: Any, photo: np.ndarray, path_for: Callable[[str], Path]) -> tuple[tuple[str, ...], dict]:
    from PIL import Image

    from edgeport.png_stream import write_png

    h, w = photo.shape[:2]
    _, _, ih, iw = art.image.shape
    rgb = photo[..., 0] if photo.shape[-1] == 1 else photo
    fitted = np.asarray(Image.fromarray(rgb).resize((iw, ih), Image.Resampling.BICUBIC))
    fitted = fitted[..., None] if fitted.ndim == 2 else fitted
    got = art.runtime.run({art.image.name: art.image.pixels.from_pixels(fitted.transpose(2, 0, 1)[None])})
    written, details = [], {"model_input_hw": [ih, iw]}
    for contract in art.manifest.outputs:
        value = got[contract.name]
        if contract.pixels is not None:
            pixels = contract.pixels.to_pixels(value)[0].transpose(1, 2, 0)
            image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            out, path = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC)), path_for(f".{contract.name}")
        elif art.manifest.model.task == "saliency" and value.shape[1] == 1:
            out, details["crops"] = saliency_view(photo, _resized_values(value, (h, w)))
            path = path_for(".saliency")
        elif art.manifest.model.task == "depth" and value.shape[1] == 1:
            out, found = depth_png(_resized_values(value, (h, w)))
            details.update(found)
            path = path_for(".depth")
        else:
            path, tmp = path_for(f".{contract.name}").with_suffix(".npy"), path_for(f".{contract.name}").with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, value)
            tmp.replace(path)
            written.append(str(path))
            continue
        write_png(path, out)
        written.append(str(path))
    return tuple(written), details
