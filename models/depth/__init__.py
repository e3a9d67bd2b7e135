"""Monocular depth for portrait bokeh: FCRN (Laina et al. 2016), ResNet-50 and a phone-sized MobileNet variant."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from torch import nn

from edgeport.models.checkpoint import load_strict, read_checkpoint, unwrap_state_dict
from edgeport.models.depth.fcrn import FCRN
from edgeport.models.random_init import OutputInit
from edgeport.models.samples import fit_photo, parity_photos, random_input
from edgeport.models.segmenter import normalise_rgb
from edgeport.models.spec import ModelMetadata, ModelSpec, ParityInput, Photo, PhotoPolicy, TensorContract
from edgeport.runtimes.pixels import PixelEncoding, imagenet


def depth_inputs(contracts: tuple[TensorContract, ...], seed: int,
                 photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    (contract,) = contracts
    rgb = TensorContract("rgb", contract.shape, pixels=PixelEncoding.unit())
    samples = [ParityInput(f"photo:{name}", {contract.name: normalise_rgb(fit_photo(photo, rgb))})
               for name, photo in photos or parity_photos()]
    samples.append(ParityInput(f"random:seed={seed}", {contract.name: normalise_rgb(random_input(rgb, seed))}))
    return samples


def depth_accuracy(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The standard depth accuracy δ < 1.25 (share of pixels within 25% of PyTorch's depth), and the tighter
    δ < 1.01, over pixels where PyTorch predicts a positive depth."""
    ref, got = reference["depth"], actual["depth"]
    valid = ref > 1e-6
    ratio = np.maximum(ref[valid] / np.maximum(got[valid], 1e-12), np.maximum(got[valid], 1e-12) / ref[valid])
    return {"delta_1.25": float(np.mean(ratio < 1.25)) if valid.any() else 1.0,
            "delta_1.01": float(np.mean(ratio < 1.01)) if valid.any() else 1.0}


def load_fcrn_weights(module: nn.Module, path: Path) -> None:
    """A full FCRN checkpoint (strict), or torchvision's resnet50 state dict for the encoder (fc dropped)."""
    state = unwrap_state_dict(read_checkpoint(path), prefer=("state_dict", "model"))
    if "fc.weight" in state and "conv1.weight" in state:
        encoder = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_strict(module.encoder, encoder, source=str(path))
        return
    load_strict(module, state, source=str(path))


# Default init loses the input by the last layer (BatchNorm normalises nothing) and its ReLU'd output is 0
# almost everywhere: a room-like depth instead (mean 2 m, std 0.75 m).
metric_depth_init = OutputInit("predict", mean=2.0, std=0.75)


def _spec(name: str, config: dict, summary: str) -> ModelSpec:
    return ModelSpec(
        name=name, summary=summary, factory=FCRN, config=config,
        inputs=(TensorContract("image", (1, 3, 228, 304), value_range=(-2.2, 2.7),
                               normalization="(pixel / 255 - ImageNet mean) / ImageNet std",
                               description="RGB photo, ImageNet-normalised", pixels=imagenet()),),
        outputs=(TensorContract("depth", (1, 1, 128, 160), value_range=(0.0, float("inf")), color_order="depth",
                                description="depth (metres once trained) at about half the input size; "
                                            "upsample in the app"),),
        load_weights=load_fcrn_weights, make_inputs=depth_inputs, task="depth", task_metric=depth_accuracy,
        photo=PhotoPolicy(mode="resize"),
        random_init=metric_depth_init,
        metadata=ModelMetadata(paper="Laina et al. 2016, Deeper Depth Prediction with Fully Convolutional "
                                     "Residual Networks", upstream="https://github.com/iro-cp/FCRN-DepthPrediction "
                                     "(encoder keys: pytorch/vision resnet50)"),
    )


SPECS = (
    _spec("depth-fcrn", {"backbone": "resnet50", "bottleneck": 1024, "width": 1.0, "layers": (3, 4, 6, 3)},
          "FCRN depth: ResNet-50 encoder, 4 fast up-projections, 228x304 -> 128x160"),
    _spec("depth-fcrn-mobilenet", {"backbone": "mobilenet_v1", "bottleneck": 192, "width": 1.0},
          "FCRN depth with a MobileNet v1 encoder, phone-sized (~19 MB fp32)"),
)
