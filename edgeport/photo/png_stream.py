"""A PNG written row block by row block, so an upscaled 16000x12000 photo never sits in memory whole.

8-bit greyscale, RGB or 16-bit greyscale; each row uses the Sub filter (the left neighbour's difference),
zlib-compressed as it arrives; written to a temporary file beside the target and renamed when complete.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import TracebackType

import numpy as np

from edgeport.runtimes.atomic import atomic_file

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2}   # channels -> PNG colour type (greyscale, truecolour)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class PngStream:
    """with PngStream(path, height, width, channels) as png: png.write(rows)  # rows: hxwxC uint8 (or uint16)"""

    def __init__(self, path: Path, height: int, width: int, channels: int, bit_depth: int = 8) -> None:
        if channels not in _COLOR_TYPES or bit_depth not in (8, 16):
            raise ValueError(f"PngStream writes 1 or 3 channels at 8 or 16 bits, not {channels} at {bit_depth}")
        self.path, self.height, self.width, self.channels = Path(path), height, width, channels
        self.dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
        self.bpp = channels * self.dtype.itemsize
        self._file = atomic_file(self.path)   # the PNG appears whole when the block ends, or not at all
        self.fh = self._file.__enter__()
        self.zip = zlib.compressobj(6)
        self.rows = 0
        header = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOR_TYPES[channels], 0, 0, 0)
        self.fh.write(_SIGNATURE + _chunk(b"IHDR", header))

    def write(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        rows = rows[..., None] if rows.ndim == 2 else rows
        if rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"rows of shape {rows.shape[1:]} for a {self.width}x{self.channels} PNG")
        raw = rows.astype(self.dtype).reshape(rows.shape[0], -1).view(np.uint8)
        sub = raw.copy()
        sub[:, self.bpp:] = raw[:, self.bpp:] - raw[:, :-self.bpp]   # uint8 arithmetic wraps, as PNG's Sub wants
        filtered = np.concatenate([np.ones((rows.shape[0], 1), np.uint8), sub], axis=1)
        data = self.zip.compress(filtered.tobytes())
        if data:
            self.fh.write(_chunk(b"IDAT", data))
        self.rows += rows.shape[0]

    def __enter__(self) -> "PngStream":
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None and self.rows == self.height:
            self.fh.write(_chunk(b"IDAT", self.zip.flush()) + _chunk(b"IEND", b""))
            self._file.__exit__(None, None, None)    # renamed into place, complete
            return
        failure = exc or ValueError(f"{self.path}: {self.rows} rows written of {self.height}")
        self._file.__exit__(type(failure), failure, tb)   # the temporary is removed: nothing at the path
        if kind is None:
            raise failure


def write_png(path: Path, image: np.ndarray) -> None:
    """A whole HxW(xC) uint8 or uint16 image."""
    image = image[..., None] if image.ndim == 2 else image
    depth = 16 if image.dtype == np.uint16 else 8
    with PngStream(path, image.shape[0], image.shape[1], image.shape[2], depth) as png:
        png.write(image)
