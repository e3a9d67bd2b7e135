"""A fixed-size model over a photo of any size: overlapping tiles, feathered blending, one strip of output
rows in memory at a time.

Along an edge it shares with a neighbour a tile's output is weighted 0 over the first `margin` pixels (where
the tile's border zero-padding reaches the receptive field), then ramps linearly to 1 across the rest of the
overlap; the weighted sum is divided by the summed weights. Rows are blended and handed to `emit` as soon as
no later tile row can touch them, so memory grows with the photo's width, never with its height.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

# (tile pixels, 1xCxhxw uint8) -> (1xCxHxW float pixel levels, unrounded)
TileFn = Callable[[np.ndarray], np.ndarray]
# (input y, x, height, width of a tile's window) -> whether to run it
TileWanted = Callable[[int, int, int, int], bool]


@dataclass(frozen=True)
class TilePlan:
    tile_h: int
    tile_w: int
    overlap: int    # input pixels two neighbouring tiles share
    margin: int     # of those, input pixels at a tile's inner edge that get no weight

    def __post_init__(self) -> None:
        if not 0 <= 2 * self.margin < self.overlap < min(self.tile_h, self.tile_w):
            raise ValueError(f"tiling needs 0 <= 2 x margin < overlap < tile: margin {self.margin}, overlap "
                             f"{self.overlap}, tile {self.tile_h}x{self.tile_w}")

    def starts(self, length: int, tile: int) -> list[int]:
        """Tile origins along one axis: stride tile - overlap, the last one flush with the end."""
        if length <= tile:
            return [0]
        found = list(range(0, length - tile, tile - self.overlap))
        return found + [length - tile]

    def count(self, height: int, width: int) -> int:
        return len(self.starts(height, self.tile_h)) * len(self.starts(width, self.tile_w))


def _ramp(size: int, overlap: int, margin: int, lead: bool, trail: bool) -> np.ndarray:
    """Weights along one axis of a tile (output pixels); `lead`/`trail`: a neighbour shares that edge."""
    x = np.arange(size, dtype=np.float64) + 0.5
    w = np.ones(size)
    span = max(overlap - 2 * margin, 1e-9)
    if lead:
        w = np.minimum(w, np.clip((x - margin) / span, 0.0, 1.0))
    if trail:
        w = np.minimum(w, np.clip((size - x - margin) / span, 0.0, 1.0))
    return w


def _padded(photo: np.ndarray, tile_h: int, tile_w: int) -> np.ndarray:
    """A photo smaller than a tile is reflected (edge-repeated when tiny) up to the tile size."""
    h, w = photo.shape[:2]
    ph, pw = max(tile_h - h, 0), max(tile_w - w, 0)
    if not ph and not pw:
        return photo
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(photo, ((0, ph), (0, pw), (0, 0)), mode=mode)


class _Strip:
    """Weighted sums of the output rows not yet final: one tile row high, allocated once and reused."""

    FLUSH_ROWS = 64   # rows converted to uint8 at a time, so the float temporaries stay small

    def __init__(self, rows: int, width: int, channels: int) -> None:
        self.acc = np.zeros((rows, width, channels), np.float32)
        self.weight = np.zeros((rows, width), np.float32)
        self.base = 0   # output row of acc[0]

    def add(self, oy: int, ox: int, levels: np.ndarray, w2: np.ndarray) -> None:
        th, tw = w2.shape
        self.acc[oy - self.base:oy - self.base + th, ox:ox + tw] += levels * w2[..., None]
        self.weight[oy - self.base:oy - self.base + th, ox:ox + tw] += w2

    def release(self, upto: int, out_h: int, out_w: int) -> Iterator[np.ndarray]:
        """Rows base..upto as uint8 (cropped to the photo's own output size), then the strip moves down."""
        done = upto - self.base
        keep = max(min(done, out_h - self.base), 0)
        for r0 in range(0, keep, self.FLUSH_ROWS):
            r1 = min(r0 + self.FLUSH_ROWS, keep)
            if not self.weight[r0:r1, :out_w].any():      # no tile ran here (a selection's caller skipped them)
                yield np.zeros((r1 - r0, out_w, self.acc.shape[2]), np.uint8)
                continue
            rows = self.acc[r0:r1, :out_w] / np.maximum(self.weight[r0:r1, :out_w], 1e-12)[..., None]
            yield np.clip(np.rint(rows), 0, 255).astype(np.uint8)
        rest = self.acc.shape[0] - done
        self.acc[:rest], self.weight[:rest] = self.acc[done:].copy(), self.weight[done:].copy()
        self.acc[rest:], self.weight[rest:] = 0.0, 0.0
        self.base = upto


def tiled_rows(photo: np.ndarray, plan: TilePlan, scale: tuple[float, float], run_tile: TileFn, channels: int,
               on_tile: Callable[[], None] = lambda: None, wanted: TileWanted | None = None) -> Iterator[np.ndarray]:
    """Blended output rows (HxWxC uint8 blocks, top to bottom) of the model over an HxWxC uint8 photo.
    `wanted(y, x, h, w)` skips the tiles whose input window it declines: their pixels come out 0, and every
    pixel inside a tile that runs gets exactly the value a full run gives it only if all tiles covering it run
    (a selection's caller asks for every tile that touches it)."""
    h0, w0 = photo.shape[:2]
    padded = _padded(photo, plan.tile_h, plan.tile_w)
    height, width = padded.shape[:2]
    sy, sx = scale
    ys, xs = plan.starts(height, plan.tile_h), plan.starts(width, plan.tile_w)
    strip = _Strip(round(plan.tile_h * sy), round(width * sx), channels)
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            if wanted is not None and not wanted(y, x, plan.tile_h, plan.tile_w):
                continue
            tile = padded[y:y + plan.tile_h, x:x + plan.tile_w].transpose(2, 0, 1)[None]
            levels = run_tile(np.ascontiguousarray(tile))[0].transpose(1, 2, 0)
            th, tw = levels.shape[:2]
            wy = _ramp(th, round(plan.overlap * sy), round(plan.margin * sy), r > 0, r < len(ys) - 1)
            wx = _ramp(tw, round(plan.overlap * sx), round(plan.margin * sx), c > 0, c < len(xs) - 1)
            strip.add(round(y * sy), round(x * sx), levels, wy[:, None] * wx[None, :])
            on_tile()
        upto = round(ys[r + 1] * sy) if r + 1 < len(ys) else round(height * sy)
        yield from strip.release(upto, round(h0 * sy), round(w0 * sx))
