"""What the photo pipelines put around a model's output: the photo resized band by band (so a 4x output of a
12-megapixel photo never sits whole in memory), the background treatments (keep, darken, white), and the
alpha blend of the two."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

BACKGROUNDS = ("keep", "darken", "white")


@dataclass(frozen=True)
class Background:
    """Outside a selection: `keep` the photo (resized as the output), `darken` it by `amount` (0.6: 60% darker,
    the pixels times 0.4), or make it `white`."""
    kind: str = "keep"
    amount: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Background:
        """`keep`, `white`, `darken` (by 0.5) or `darken:0.6`; raises ValueError saying what is accepted."""
        kind, _, value = text.partition(":")
        if kind not in BACKGROUNDS or (value and kind != "darken"):
            raise ValueError(f"a background is keep, darken:AMOUNT (0-1) or white; not {text!r}")
        try:
            amount = float(value) if value else (0.5 if kind == "darken" else 0.0)
        except ValueError:
            raise ValueError(f"darken takes an amount from 0 to 1, e.g. darken:0.6; not {text!r}") from None
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"darken takes an amount from 0 to 1 (0.6 = 60% darker); not {amount:g}")
        return cls(kind, amount)

    def apply(self, resized: np.ndarray) -> np.ndarray:
        """Photo rows (already at the output's size, float levels) -> background rows, float levels."""
        if self.kind == "white":
            return np.full_like(resized, 255.0)
        if self.kind == "darken":
            return resized * (1.0 - self.amount)
        return resized

    def __str__(self) -> str:
        return f"darken:{self.amount:g}" if self.kind == "darken" else self.kind


class BandResize:
    """One image resized to (out_h, out_w), handed out as row bands. Each channel is resized as 32-bit float:
    PIL's box resize reads the source pixels around each band for the filter's support, so every band holds
    exactly the rows a whole resize gives (8-bit images round between PIL's two passes, and a one-row band
    came out up to 16 levels off)."""

    def __init__(self, image: np.ndarray, out_hw: tuple[int, int], resample: Image.Resampling) -> None:
        """image: HxW (an alpha) or HxWxC (a photo)."""
        self.planes = [Image.fromarray(np.ascontiguousarray(image[..., c] if image.ndim == 3 else image,
                                                            dtype=np.float32))
                       for c in range(image.shape[2] if image.ndim == 3 else 1)]
        self.stacked = image.ndim == 3
        self.in_h, self.in_w = image.shape[:2]
        self.out_h, self.out_w = out_hw
        self.resample = resample

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Output rows r0..r1 as float32 (HxW, or HxWxC)."""
        box = (0, r0 * self.in_h / self.out_h, self.in_w, r1 * self.in_h / self.out_h)
        bands = [np.asarray(p.resize((self.out_w, r1 - r0), self.resample, box=box)) for p in self.planes]
        return np.stack(bands, axis=-1) if self.stacked else bands[0]


def blend(model: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha x model + (1 - alpha) x background, to 8 bits; where alpha is 0 the background's levels exactly."""
    a = alpha[..., None] if alpha.ndim == model.ndim - 1 else alpha
    mixed = a * model.astype(np.float32) + (1.0 - a) * background
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
