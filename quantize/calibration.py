"""Calibration data for int8: real photos fitted to the model's input contract.

By default the bundled calibration photos (other photos than the parity ones, so a quantized export is
judged on images it was not calibrated on); `--calib DIR` uses a team's own images instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgeport.models.errors import ModelError
from edgeport.models.samples import bundled_calibration_photos
from edgeport.models.spec import ModelSpec, ParityInput, Photo, TensorContract, is_noise_sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_IMAGES = 64


@dataclass(frozen=True)
class CalibrationSet:
    source: str                       # "bundled" or the folder's path
    labels: tuple[str, ...]
    inputs: tuple[ParityInput, ...]

    @property
    def count(self) -> int:
        return len(self.inputs)

    def arrays(self) -> list[Mapping[str, np.ndarray]]:
        return [sample.arrays for sample in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "count": self.count, "images": list(self.labels)}


def read_photo_dir(folder: Path, limit: int = MAX_IMAGES) -> list[Photo]:
    """RGB uint8 photos from a folder (sorted by name, at most `limit`); refuses an empty or unreadable one."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"calibration folder not found: {folder} (give --calib a folder of images)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise ModelError(f"no images in {folder} ({', '.join(IMAGE_SUFFIXES)}); give --calib a folder of photos")
    photos = []
    for path in paths:
        try:
            with Image.open(path) as img:
                photos.append((path.name, np.asarray(img.convert("RGB"), dtype=np.uint8)))
        except (UnidentifiedImageError, OSError) as exc:
            raise ModelError(f"cannot read calibration image {path}: {exc}") from None
    return photos


def calibration_set(spec: ModelSpec, contracts: tuple[TensorContract, ...], folder: Path | None = None,
                    seed: int = 0) -> CalibrationSet:
    """The spec's own input maker builds the inputs (clicks, holes, noise as for parity), from other photos."""
    photos = read_photo_dir(folder) if folder is not None else bundled_calibration_photos()
    inputs = [s for s in spec.make_inputs(contracts, seed + 1000, photos) if not is_noise_sample(s.label)]
    return CalibrationSet("bundled" if folder is None else str(Path(folder).resolve()),
                          tuple(name for name, _ in photos), tuple(inputs))
