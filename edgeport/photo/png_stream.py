"""A PNG written row block by row block, so an upscaled 16000x12000 photo never sits in memory whole.

8-bit greyscale, RGB or 16-bit greyscale; each row uses the Up filter (the difference from the row above),
zlib-compressed at level 1 as it arrives; written to a temporary file beside the target and renamed when
complete. Up at level 1 against Sub at level 6 on a 6400x4800 upscale: 0.86 s instead of 5.7 s to compress,
20.0 MB instead of 17.2 MB: the PNG had been most of a selection upscale's time.
"""
from __future__ import annotations

import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
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
        self.zip = zlib.compressobj(1)
        self.compressor = ThreadPoolExecutor(1, thread_name_prefix="png")
        self.pending: Future[None] | None = None
        self.above = np.zeros(width * self.bpp, np.uint8)   # the row before the first is zeros, as PNG's Up says
        self.rows = 0
        header = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOR_TYPES[channels], 0, 0, 0)
        self.fh.write(_SIGNATURE + _chunk(b"IHDR", header))

    def write(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        rows = rows[..., None] if rows.ndim == 2 else rows
        if rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"rows of shape {rows.shape[1:]} for a {self.width}x{self.channels} PNG")
        raw = rows.astype(self.dtype).reshape(rows.shape[0], -1).view(np.uint8)
        up = np.empty_like(raw)
        up[0] = raw[0] - self.above                  # uint8 arithmetic wraps, as PNG's Up wants
        up[1:] = raw[1:] - raw[:-1]
        self.above = raw[-1].copy()
        filtered = np.concatenate([np.full((rows.shape[0], 1), 2, np.uint8), up], axis=1)
        self._drain()
        self.pending = self.compressor.submit(self._compress, filtered.tobytes())
        self.rows += rows.shape[0]

    def _compress(self, data: bytes) -> None:
        """On the compressor thread (zlib lets go of the GIL): the next band is made meanwhile."""
        packed = self.zip.compress(data)
        if packed:
            self.fh.write(_chunk(b"IDAT", packed))

    def _drain(self) -> None:
        if self.pending is not None:
            self.pending.result()     # in order, and an error (a full disk) is raised here
            self.pending = None

    def __enter__(self) -> "PngStream":
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        late: OSError | None = None      # the last band's write failing on the compressor thread (a full disk)
        try:
            self._drain()
        except OSError as failed:
            late = failed
        finally:
            self.compressor.shutdown()
        if kind is None and late is None and self.rows == self.height:
            self.fh.write(_chunk(b"IDAT", self.zip.flush()) + _chunk(b"IEND", b""))
            self._file.__exit__(None, None, None)    # renamed into place, complete
            return
        failure = exc or late or ValueError(f"{self.path}: {self.rows} rows written of {self.height}")
        self._file.__exit__(type(failure), failure, tb)   # the temporary is removed: nothing at the path
        if kind is None:
            raise failure


def write_png(path: Path, image: np.ndarray) -> None:
    """A whole HxW(xC) uint8 or uint16 image."""
    image = image[..., None] if image.ndim == 2 else image
    depth = 16 if image.dtype == np.uint16 else 8
    with PngStream(path, image.shape[0], image.shape[1], image.shape[2], depth) as png:
        png.write(image)
