"""Inpainting: GMCNN (shepnerd/inpainting_gmcnn) and a partial-convolution U-Net (Liu et al. 2018)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from edgeport.models.checkpoint import load_state_dict_file
from edgeport.models.inpaint.gmcnn import GMCNN
from edgeport.models.inpaint.pconv import PConvUNet
from edgeport.models.random_init import OutputInit
from edgeport.models.samples import fit_photo, parity_photos
from edgeport.models.spec import ModelMetadata, ModelSpec, ParityInput, Photo, PhotoPolicy, TensorContract, multiple_of
from edgeport.runtimes.pixels import PixelEncoding


def hole_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """1 in the hole: one rectangle and a few thick free-form strokes, as inpainting benchmarks use."""
    mask = np.zeros((height, width), np.float32)
    rh, rw = rng.integers(height // 6, height // 3), rng.integers(width // 6, width // 3)
    y, x = rng.integers(0, height - rh), rng.integers(0, width - rw)
    mask[y:y + rh, x:x + rw] = 1
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(3):
        py, px = rng.uniform(0, height), rng.uniform(0, width)
        radius = max(2.0, min(height, width) / 40)
        for _ in range(12):
            angle = rng.uniform(0, 2 * np.pi)
            ny, nx = py + np.sin(angle) * height / 16, px + np.cos(angle) * width / 16
            for t in np.linspace(0, 1, 8):
                cy, cx = py + (ny - py) * t, px + (nx - px) * t
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1
            py, px = np.clip(ny, 0, height - 1), np.clip(nx, 0, width - 1)
    return mask


def _photos_and_holes(height: int, width: int, seed: int,
                      photos: Sequence[Photo] | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, RGB in [0,1] as 1x3xHxW, hole mask HxW) for each sample photo and one random image."""
    rng = np.random.default_rng(seed)
    rgb_contract = TensorContract("rgb", (1, 3, height, width), pixels=PixelEncoding.unit())
    items = [(f"photo-with-hole:{name}", fit_photo(photo, rgb_contract), hole_mask(height, width, rng))
             for name, photo in photos or parity_photos()]
    items.append((f"random:seed={seed}", rng.integers(0, 256, (1, 3, height, width)).astype(np.float32) / 255,
                  hole_mask(height, width, rng)))
    return items


def gmcnn_inputs(contracts: tuple[TensorContract, ...], seed: int,
                 photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    (contract,) = contracts
    _, _, h, w = contract.shape
    samples = []
    for label, rgb, hole in _photos_and_holes(h, w, seed, photos):
        image = (rgb * 2 - 1) * (1 - hole)                    # [-1, 1], zero in the hole, as upstream's test
        x = np.concatenate([image, hole[None, None]], axis=1).astype(np.float32)
        samples.append(ParityInput(label, {contract.name: x}))
    return samples


def pconv_inputs(contracts: tuple[TensorContract, ...], seed: int,
                 photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    image_c, mask_c = contracts
    _, _, h, w = image_c.shape
    samples = []
    for label, rgb, hole in _photos_and_holes(h, w, seed, photos):
        valid = np.broadcast_to((1 - hole)[None, None], (1, 3, h, w)).astype(np.float32)
        samples.append(ParityInput(label, {image_c.name: (rgb * valid).astype(np.float32), mask_c.name: valid.copy()}))
    return samples


def _rgb_and_hole(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """run's tile: RGB pixels and a last mask channel (255 = hole) -> RGB in [0, 1], hole as 0/1 (1xKxHxW)."""
    return pixels[:, :3].astype(np.float32) / 255.0, (pixels[:, 3:4] >= 128).astype(np.float32)


def pconv_photo_feed(pixels: np.ndarray, extras: Mapping[str, Any]) -> dict[str, np.ndarray]:
    rgb, hole = _rgb_and_hole(pixels)
    valid = np.repeat(1.0 - hole, 3, axis=1)
    return {"image": (rgb * valid).astype(np.float32), "mask": valid.astype(np.float32)}


def gmcnn_photo_feed(pixels: np.ndarray, extras: Mapping[str, Any]) -> dict[str, np.ndarray]:
    rgb, hole = _rgb_and_hole(pixels)
    return {"image_and_mask": np.concatenate([(rgb * 2 - 1) * (1 - hole), hole], axis=1).astype(np.float32)}


# Default init decays the signal through ~30 unnormalised ELU convs (output std 0.007, the same for every
# photo): unit-variance convs, then an image-like spread in [-1, 1].
gmcnn_signal_init = OutputInit("decoding_layers.1", mean=0.0, std=0.4, unit_variance=True)


def load_bare_state_dict(module: nn.Module, path: Path) -> None:
    """Upstream saves net.state_dict() bare (naoto0804's pconv under 'model')."""
    load_state_dict_file(module, path, prefer=("netGM", "model", "state_dict"))


SPECS = (
    ModelSpec(
        name="inpaint-gmcnn",
        summary="GMCNN generator: 3 columns (7/5/3 kernels), dilated convs, reflection padding, ELU",
        factory=GMCNN, config={"cnum": 32, "dilations": (2, 4, 8, 16)},
        inputs=(TensorContract("image_and_mask", (1, 4, 256, 256), value_range=(-1.0, 1.0),
                               normalization="rgb: pixel / 127.5 - 1, set to 0 in the hole; mask channel: 1 = hole",
                               color_order="RGB+mask",
                               description="channels 0-2: image with hole in [-1, 1]; channel 3: mask, 1 in the hole"),),
        outputs=(TensorContract("inpainted", (1, 3, 256, 256), value_range=(-1.0, 1.0),
                                description="generated RGB in [-1, 1]; composite pred*mask + image*(1-mask) in the app",
                                pixels=PixelEncoding.symmetric()),),
        load_weights=load_bare_state_dict, make_inputs=gmcnn_inputs, task="inpaint", random_init=gmcnn_signal_init,
        photo=PhotoPolicy(needs=("mask",), feed=gmcnn_photo_feed),
        metadata=ModelMetadata(paper="Wang et al. 2018, Image Inpainting via Generative Multi-column CNNs",
                               upstream="https://github.com/shepnerd/inpainting_gmcnn (pytorch/model/net.py)"),
        size_rule=lambda cfg, h, w: multiple_of(4, 4 * 3 * max(cfg["dilations"]) + 4)(cfg, h, w),
    ),
    ModelSpec(
        name="inpaint-pconv",
        summary="Partial-convolution U-Net, 7 levels; fp16-safe mask update",
        factory=PConvUNet, config={"layer_size": 7, "width": 64},
        inputs=(TensorContract("image", (1, 3, 256, 256), description="RGB in [0, 1], holes set to 0",
                               pixels=PixelEncoding.unit()),
                TensorContract("mask", (1, 3, 256, 256), color_order="mask", normalization="1 = valid, 0 = hole",
                               description="validity mask, same on all 3 channels")),
        outputs=(TensorContract("inpainted", (1, 3, 256, 256), description="RGB; composite with the valid pixels",
                                pixels=PixelEncoding.unit()),),
        load_weights=load_bare_state_dict, make_inputs=pconv_inputs, task="inpaint",
        photo=PhotoPolicy(needs=("mask",), feed=pconv_photo_feed),
        metadata=ModelMetadata(paper="Liu et al. 2018, Image Inpainting for Irregular Holes Using Partial Convolutions",
                               upstream="https://github.com/NVIDIA/partialconv (layer); U-Net as in the paper"),
        size_rule=multiple_of(lambda cfg: 2 ** cfg["layer_size"]),
    ),
)
