"""Parity inputs: real photos fitted to an input contract, plus a seeded random tensor.

The photos are scikit-image's bundled samples (no download), so every machine builds the same inputs.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeport.models.spec import ParityInput, Photo, TensorContract

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea")
# Calibration for int8 uses other photos than parity does, so a quantized export is judged on images it
# was not calibrated on. camera, coins, brick and clock are grayscale, repeated into RGB.
CALIBRATION_PHOTOS = ("rocket", "immunohistochemistry", "retina", "hubble_deep_field", "camera", "coins",
                      "brick", "clock")


@lru_cache(maxsize=None)
def sample_photo(name: str) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def parity_photos() -> list[Photo]:
    return [(name, sample_photo(name)) for name in SAMPLE_PHOTOS]


def bundled_calibration_photos() -> list[Photo]:
    return [(name, sample_photo(name)) for name in CALIBRATION_PHOTOS]


class ImageTooLarge(ValueError):
    """A picture file whose declared size is past the decompression-bomb limit."""


def decode_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """HxWxC uint8 (PIL mode "RGB" or "L"), upright per the file's EXIF orientation, as a phone shows it.
    Raises ValueError naming the file when Pillow cannot read it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(ImageOps.exif_transpose(img).convert(mode))
    except Image.DecompressionBombError:   # the header alone declares it: nothing was decoded
        raise ImageTooLarge(f"{path} declares more pixels than Pillow decodes safely (over "
                            f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, its decompression-bomb limit): "
                            "not decoded; downscale it first") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"cannot read {path} as an image ({exc})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def fit_photo(rgb: np.ndarray, contract: TensorContract) -> np.ndarray:
    """Centre-crop to the contract's aspect, resize, reorder colours and scale to its value range (1xCxHxW)."""
    from PIL import Image

    _, channels, height, width = contract.shape
    h, w = rgb.shape[:2]
    target_aspect = width / height
    if w / h > target_aspect:
        crop_w = int(round(h * target_aspect))
        x0 = (w - crop_w) // 2
        rgb = rgb[:, x0:x0 + crop_w]
    else:
        crop_h = int(round(w / target_aspect))
        y0 = (h - crop_h) // 2
        rgb = rgb[y0:y0 + crop_h]
    img = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    if contract.color_order == "BGR":
        img = img[..., ::-1]
    elif contract.color_order == "GRAY":
        img = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    if img.shape[-1] != channels:
        raise ValueError(f"{contract.name}: a {contract.color_order} photo has {img.shape[-1]} channels, "
                         f"the contract wants {channels}")
    nchw = np.ascontiguousarray(img.transpose(2, 0, 1)[None])
    if contract.pixels is not None:   # a picture holds whole 8-bit levels (the grey mix is not one)
        nchw = np.clip(np.rint(nchw), 0, 255)
        return contract.pixels.from_pixels(nchw).astype(contract.dtype)
    lo, hi = contract.value_range
    return (lo + (nchw / 255.0) * (hi - lo)).astype(contract.dtype)


def random_input(contract: TensorContract, seed: int) -> np.ndarray:
    """Uniform noise over the value range; for a picture, uniform random 8-bit pixels, so an artifact that
    takes pixels sees exactly what PyTorch sees."""
    rng = np.random.default_rng(seed)
    if contract.pixels is not None:
        pixels = rng.integers(0, 256, size=contract.shape, dtype=np.uint8)
        return contract.pixels.from_pixels(pixels).astype(contract.dtype)
    lo, hi = contract.value_range
    return rng.uniform(lo, hi, size=contract.shape).astype(contract.dtype)


def photo_inputs(contracts: tuple[TensorContract, ...], seed: int,
                 photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    """For single-image models: each photo (the parity photos by default), then one seeded random input."""
    if len(contracts) != 1:
        raise ValueError("photo_inputs fits single-input image models; give the spec its own input maker")
    (contract,) = contracts
    samples = [ParityInput(f"photo:{name}", {contract.name: fit_photo(rgb, contract)})
               for name, rgb in photos or parity_photos()]
    samples.append(ParityInput(f"random:seed={seed}", {contract.name: random_input(contract, seed)}))
    return samples
