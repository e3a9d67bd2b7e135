"""A team's own validation photos (--photos DIR), added to the parity samples of export and check.

Each photo is fitted to the model's input the way `edgeport run` feeds it: a tiled model sees a native-
resolution centre crop of one tile (reflected when the photo is smaller), a global model the whole photo
resized. The manifest keeps each file's name and sha256, so `check` re-reads exactly those photos or says
which one changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from edgeport.models.errors import ModelError
from edgeport.models.samples import decode_image, parity_photos
from edgeport.models.spec import Photo
from edgeport.runtimes.artifact import sha256_file

if TYPE_CHECKING:
    from edgeport.models.spec import ModelSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LABEL_PREFIX = "team/"


@dataclass(frozen=True)
class PhotoSet:
    folder: str
    files: tuple[tuple[str, str], ...]      # (file name, sha256)
    fit: str                                # "crop" (a tile, native resolution) or "resize" (the whole photo)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "fit": self.fit, "files": [{"name": n, "sha256": h} for n, h in self.files]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PhotoSet | None":
        if not d:
            return None
        return cls(d["folder"], tuple((f["name"], f["sha256"]) for f in d["files"]), d.get("fit", "crop"))


def _decode(path: Path) -> np.ndarray:
    try:
        return decode_image(path)
    except ValueError as exc:
        raise ModelError(f"--photos: {exc}; remove it or convert it to PNG/JPEG") from None


def fitted(rgb: np.ndarray, height: int, width: int, fit: str) -> np.ndarray:
    """HxWx3 uint8 of exactly the input size."""
    from PIL import Image

    if fit == "resize":
        return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))
    h, w = rgb.shape[:2]
    if h < height or w < width:
        mode = "reflect" if height - h < h and width - w < w else "edge"
        rgb = np.pad(rgb, ((0, max(height - h, 0)), (0, max(width - w, 0)), (0, 0)), mode=mode)
        h, w = rgb.shape[:2]
    y, x = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(rgb[y:y + height, x:x + width])


def read_photo_set(folder: Path, fit: str) -> PhotoSet:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"--photos {folder}: no such folder; give a folder of PNG or JPEG photos")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ModelError(f"--photos {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return PhotoSet(str(folder.resolve()), tuple((p.name, sha256_file(p)) for p in files), fit)


def load_photos(photo_set: PhotoSet, height: int, width: int) -> list[Photo]:
    """The set's photos, fitted; raises ModelError when one is gone or changed since it was recorded."""
    photos = []
    for name, digest in photo_set.files:
        path = Path(photo_set.folder) / name
        if not path.is_file():
            raise ModelError(f"validation photo {path} is gone; check needs the photos the export recorded")
        if sha256_file(path) != digest:
            raise ModelError(f"validation photo {path} changed since export (sha256 differs); re-export with --photos")
        photos.append((LABEL_PREFIX + name, fitted(_decode(path), height, width, photo_set.fit)))
    return photos


def parity_samples(spec: ModelSpec, contracts: tuple, seed: int, photo_set: PhotoSet | None) -> list:
    """The spec's parity inputs: the bundled photos, the team's (when given), and the seeded noise."""
    if photo_set is None:
        return spec.make_inputs(contracts, seed)

    _, _, height, width = next(c for c in contracts if len(c.shape) == 4).shape
    return spec.make_inputs(contracts, seed, parity_photos() + load_photos(photo_set, height, width))
