"""The part of the photo the user wants the model on: `--select rect:X,Y,W,H | polygon:X1,Y1,X2,Y2,... |
mask:FILE | subject[:X,Y]`, as an alpha over the photo (1 inside, 0 outside, a linear ramp `feather` pixels
wide across the edge). Every problem is one line saying what to give instead."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.errors import UsageError

SELECTIONS = ("rect", "polygon", "mask", "subject")
Point = tuple[float, float]


@dataclass(frozen=True)
class Selection:
    kind: str                            # one of SELECTIONS
    points: tuple[Point, ...] = ()       # rect: (x, y), (w, h); polygon: its vertices; subject: the click, if any
    path: Path | None = None             # mask: the image, white = selected

    @classmethod
    def parse(cls, text: str) -> Selection:
        """Raises ValueError with the accepted forms (argparse shows it as the option's error)."""
        kind, _, rest = text.partition(":")
        if kind not in SELECTIONS:
            raise ValueError(f"a selection is rect:X,Y,W,H, polygon:X1,Y1,X2,Y2,..., mask:FILE or subject[:X,Y]; "
                             f"not {text!r}")
        if kind == "mask":
            if not rest:
                raise ValueError("mask:FILE needs the mask image (white = selected)")
            return cls(kind, path=Path(rest))
        values = _numbers(rest, text) if rest else []
        if kind == "rect" and (len(values) != 4 or values[2] <= 0 or values[3] <= 0):
            raise ValueError(f"rect:X,Y,W,H takes four numbers, width and height above 0; not {text!r}")
        if kind == "polygon" and (len(values) % 2 or len(values) < 6):
            raise ValueError(f"a polygon needs at least 3 points (X1,Y1,X2,Y2,X3,Y3,...); not {text!r}")
        if kind == "subject" and len(values) not in (0, 2):
            raise ValueError(f"subject takes one click, subject:X,Y, or none (the most salient region); not {text!r}")
        return cls(kind, tuple(zip(values[0::2], values[1::2])))

    def __str__(self) -> str:
        if self.kind == "mask":
            return f"mask:{self.path}"
        return f"{self.kind}:" + ",".join(f"{v:g}" for p in self.points for v in p) if self.points else self.kind


def _numbers(rest: str, text: str) -> list[float]:
    try:
        return [float(v) for v in rest.split(",")]
    except ValueError:
        raise ValueError(f"the selection's coordinates are numbers in photo pixels; not {text!r}") from None


def _rasterized(selection: Selection, hw: tuple[int, int]) -> np.ndarray:
    """HxW bool: the shape drawn at the photo's pixels (a pixel is in when its centre is)."""
    from PIL import Image, ImageDraw

    h, w = hw
    if selection.kind == "rect":
        (x, y), (sw, sh) = selection.points
        inside = np.zeros(hw, bool)
        inside[max(round(y), 0):max(round(y + sh), 0), max(round(x), 0):max(round(x + sw), 0)] = True
        return inside
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).polygon([(x - 0.5, y - 0.5) for x, y in selection.points], fill=255)
    return np.asarray(canvas) > 0


def feathered(inside: np.ndarray, feather: float) -> np.ndarray:
    """HxW float32: 1 deep inside, 0 outside, a linear ramp `feather` pixels wide centred on the edge. The
    distances are computed only in the shape's bounding box grown by the ramp, so a small selection on a big
    photo costs little."""
    alpha = inside.astype(np.float32)
    if feather <= 0 or not inside.any():
        return alpha
    from scipy.ndimage import distance_transform_edt

    ys, xs = np.nonzero(inside)
    grow = int(np.ceil(feather)) + 2
    y0, y1 = max(ys.min() - grow, 0), min(ys.max() + grow + 1, inside.shape[0])
    x0, x1 = max(xs.min() - grow, 0), min(xs.max() + grow + 1, inside.shape[1])
    box = inside[y0:y1, x0:x1]
    signed = distance_transform_edt(box) - distance_transform_edt(~box)   # > 0 inside, < 0 outside
    alpha[y0:y1, x0:x1] = np.clip(0.5 + signed / feather, 0.0, 1.0)
    return alpha


def selection_alpha(selection: Selection, hw: tuple[int, int], feather: float = 0.0,
                    given: np.ndarray | None = None) -> np.ndarray:
    """HxW float32 alpha over an HxW photo. `given` is the HxW bool mask of a mask or subject selection (the
    mask file read at the photo's size, or what a segmenter or saliency artifact found). Raises UsageError for
    a selection that misses the photo or selects nothing or everything."""
    h, w = hw
    for x, y in selection.points if selection.kind in ("polygon", "subject") else ():
        if not (0 <= x < w and 0 <= y < h):
            raise UsageError(f"the point {x:g},{y:g} of --select {selection} is outside the {w}x{h} photo")
    if selection.kind in ("mask", "subject"):
        if given is None:
            raise UsageError("--select subject needs --subject-model ARTIFACT: a segmenter (with the click) "
                             "or a saliency artifact")
        inside = given
    else:
        inside = _rasterized(selection, hw)
    if not inside.any():
        raise UsageError(f"--select {selection} selects nothing of the {w}x{h} photo; give a selection inside it")
    if inside.all():
        raise UsageError(f"--select {selection} selects the whole {w}x{h} photo; run without --select for that")
    return feathered(inside, feather)
