"""Interactive (click-to-select) segmenter: SqueezeNet 1.1 + SharpMask refinement, clicks as input."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from edgeport.models.checkpoint import load_strict, read_checkpoint, unwrap_state_dict
from edgeport.models.errors import CheckpointError
from edgeport.models.random_init import OutputInit
from edgeport.models.samples import fit_photo, parity_photos
from edgeport.models.segmenter.sharpmask import ClickSegmenter
from edgeport.models.spec import ModelMetadata, ModelSpec, ParityInput, Photo, PhotoPolicy, TensorContract
from edgeport.runtimes.pixels import PixelEncoding, imagenet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
TRUNCATE = 255.0


def click_maps(height: int, width: int, positive: Sequence[tuple[float, float]],
               negative: Sequence[tuple[float, float]], truncate: float = TRUNCATE) -> np.ndarray:
    """Xu et al. 2016: per pixel, the Euclidean distance to the nearest positive (channel 0) and negative
    (channel 1) click, truncated at 255; a channel with no clicks is 255 everywhere. Clicks are (y, x) pixels.
    Returns 1x2xHxW float32, the model's `clicks` input."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    maps = np.full((2, height, width), truncate, np.float32)
    for channel, clicks in enumerate((positive, negative)):
        for y, x in clicks:
            maps[channel] = np.minimum(maps[channel], np.sqrt((yy - y) ** 2 + (xx - x) ** 2))
    return np.minimum(maps, truncate)[None]


def normalise_rgb(rgb01: np.ndarray) -> np.ndarray:
    """1x3xHxW RGB in [0, 1] -> ImageNet-normalised, as the torchvision backbone was trained."""
    return ((rgb01 - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]).astype(np.float32)


def simulated_clicks(height: int, width: int, rng: np.random.Generator) -> tuple[list, list]:
    """Two positive clicks near the centre (where the photos' subject is) and two negatives near the border."""
    positive = [(height * rng.uniform(0.35, 0.65), width * rng.uniform(0.35, 0.65)) for _ in range(2)]
    negative = [(height * rng.choice([rng.uniform(0.02, 0.12), rng.uniform(0.88, 0.98)]),
                 width * rng.uniform(0.05, 0.95)) for _ in range(2)]
    return positive, negative


def segmenter_inputs(contracts: tuple[TensorContract, ...], seed: int,
                     photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    image_c, clicks_c = contracts
    _, _, h, w = image_c.shape
    rng = np.random.default_rng(seed)
    rgb_contract = TensorContract("rgb", (1, 3, h, w), pixels=PixelEncoding.unit())
    samples = []
    for name, photo in photos or parity_photos():
        clicks = click_maps(h, w, *simulated_clicks(h, w, rng))
        samples.append(ParityInput(f"photo+clicks:{name}", {
            image_c.name: normalise_rgb(fit_photo(photo, rgb_contract)), clicks_c.name: clicks}))
    rgb = rng.integers(0, 256, (1, 3, h, w)).astype(np.float32) / 255   # random 8-bit pixels
    samples.append(ParityInput(f"random:seed={seed}", {
        image_c.name: normalise_rgb(rgb), clicks_c.name: click_maps(h, w, *simulated_clicks(h, w, rng))}))
    return samples


def segmenter_photo_feed(pixels: np.ndarray, extras: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """run's photo, resized to the input, and the clicks (in input pixels) as distance maps."""
    _, _, h, w = pixels.shape
    return {"image": normalise_rgb(pixels.astype(np.float32) / 255.0), "clicks": click_maps(h, w, *extras["clicks"])}


def mask_iou(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> dict[str, float]:
    """IoU of the two masks thresholded at 0.5 (1.0 when both are empty)."""
    a, b = reference["mask"] > 0.5, actual["mask"] > 0.5
    union = np.logical_or(a, b).sum()
    return {"mask_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0}


def load_segmenter_weights(module: nn.Module, path: Path) -> None:
    """A full segmenter checkpoint (strict), or torchvision's squeezenet1_1 state dict for the backbone:
    its features load by name, features.0 gets the 2 click channels zero-filled (so clicks start with no
    influence), the classifier is dropped, and the refinement head keeps its seeded init."""
    state = unwrap_state_dict(read_checkpoint(path), prefer=("state_dict", "model"))
    first = state.get("features.0.weight")
    if first is None or first.shape[1] != 3:
        load_strict(module, state, source=str(path))
        return
    backbone = {k: v for k, v in state.items() if k.startswith("features.")}
    extra = sorted(set(state) - set(backbone) - {"classifier.1.weight", "classifier.1.bias"})
    if extra:
        raise CheckpointError(f"{path} looks like a squeezenet1_1 checkpoint but has unexpected {extra[:3]}")
    backbone["features.0.weight"] = torch.cat([first, torch.zeros(first.shape[0], 2, *first.shape[2:])], 1)
    load_strict(module.features, {k[len("features."):]: v for k, v in backbone.items()}, source=str(path))


# Default init gives probabilities of 0.49-0.52 everywhere; a trained mask is near 0 or 1.
confident_mask_init = OutputInit("predict", mean=0.0, std=3.0)


SPECS = (
    ModelSpec(
        name="interactive-segmenter",
        summary="Click-to-select: SqueezeNet 1.1 on RGB + 2 click maps, SharpMask refinement, sigmoid mask",
        factory=ClickSegmenter, config={"head_channels": (32, 16, 8, 8)},
        inputs=(TensorContract("image", (1, 3, 512, 512), value_range=(-2.2, 2.7),
                               normalization="(pixel / 255 - ImageNet mean) / ImageNet std",
                               description="RGB photo, ImageNet-normalised", pixels=imagenet()),
                TensorContract("clicks", (1, 2, 512, 512), value_range=(0.0, 255.0), color_order="click-maps",
                               normalization="models.segmenter.click_maps(): distance in pixels to the nearest "
                                             "positive (ch 0) / negative (ch 1) click, truncated at 255; "
                                             "255 everywhere when there are no clicks",
                               description="Xu et al. 2016 click distance maps")),
        outputs=(TensorContract("mask", (1, 1, 512, 512), color_order="mask",
                                description="foreground probability; threshold at 0.5"),),
        load_weights=load_segmenter_weights, make_inputs=segmenter_inputs, task="segment",
        photo=PhotoPolicy(mode="resize", needs=("clicks",), feed=segmenter_photo_feed),
        task_metric=mask_iou, random_init=confident_mask_init,
        metadata=ModelMetadata(
            paper="Xu et al. 2016 (Deep Interactive Object Selection); Pinheiro et al. 2016 (SharpMask); "
                  "Iandola et al. 2016 (SqueezeNet)",
            upstream="backbone: pytorch/vision squeezenet1_1 (features.N keys); IMG.LY's app design"),
    ),
)
