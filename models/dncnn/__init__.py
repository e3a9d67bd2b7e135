"""DnCNN denoisers (Zhang et al. 2017) in KAIR's released layout: BN folded into the convs.

`model.0` conv + ReLU, (nb-2) x [conv + ReLU] at `model.2, model.4, ...`, last conv at `model.{2(nb-1)}`;
output = input - predicted noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from edgeport.models.checkpoint import load_state_dict_file
from edgeport.models.samples import fit_photo, parity_photos, random_input
from edgeport.models.spec import ModelMetadata, ModelSpec, ParityInput, Photo, TensorContract
from edgeport.models.weights import OfficialWeights, WeightsFile
from edgeport.runtimes.pixels import PixelEncoding


class DnCNN(nn.Module):
    def __init__(self, in_nc: int = 1, out_nc: int = 1, nc: int = 64, nb: int = 17) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, out_nc, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)


def load_kair_checkpoint(module: nn.Module, path: Path) -> None:
    """KAIR saves a bare state_dict; its training checkpoints may wrap it in 'params'."""
    load_state_dict_file(module, path, prefer=("params", "state_dict"))


NOISE_SIGMA = 25.0 / 255.0


def noisy_photo_inputs(contracts: tuple[TensorContract, ...], seed: int,
                       photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    """Each sample photo with seeded Gaussian noise (sigma 25/255, the usual benchmark level), and pure noise."""
    (contract,) = contracts
    rng = np.random.default_rng(seed)
    samples = []
    for name, photo in photos or parity_photos():
        clean = fit_photo(photo, contract)
        noisy = clean + rng.normal(0.0, NOISE_SIGMA, clean.shape).astype(np.float32)
        noisy = contract.pixels.from_pixels(contract.pixels.to_pixels(noisy))   # a noisy photo is 8-bit too
        samples.append(ParityInput(f"noisy-photo:{name}", {contract.name: noisy.astype(np.float32)}))
    samples.append(ParityInput(f"random:seed={seed}", {contract.name: random_input(contract, seed)}))
    return samples


def _contract(name: str, channels: int, colour: str, what: str) -> TensorContract:
    return TensorContract(name, (1, channels, 256, 256), color_order=colour, description=what,
                          pixels=PixelEncoding.unit(colour))


_META = ModelMetadata(paper="Zhang et al. 2017, Beyond a Gaussian Denoiser: Residual Learning of Deep CNN "
                            "for Image Denoising", upstream="https://github.com/cszn/KAIR (models/network_dncnn.py)")

_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0"
# KAIR publishes no hashes. dncnn_25's is pinned by independent download scripts and equals the hash of the
# copy KAIR once committed as model_zoo/dncnn_25.pth (commit f9888a0, 2,224,903 bytes).
DNCNN_25 = OfficialWeights("KAIR v1.0", "MIT", "https://github.com/cszn/KAIR", WeightsFile(
    "dncnn_25.pth", "0451a70de9b672ae037270498fbb1c17a1c1c4403785df586ff65df5b858e5b0",
    "third-party pins, equal to KAIR's once-committed model_zoo/dncnn_25.pth", f"{_KAIR}/dncnn_25.pth", 2224903))
DNCNN_COLOR_BLIND = OfficialWeights("KAIR v1.0", "MIT", "https://github.com/cszn/KAIR", WeightsFile(
    "dncnn_color_blind.pth", None, "none published, and no copy reached a machine here to pin",
    f"{_KAIR}/dncnn_color_blind.pth"))

SPECS = (
    ModelSpec(
        name="denoise-dncnn-gray",
        summary="DnCNN grayscale denoiser, 17 layers, residual output (dncnn_25.pth layout)",
        factory=DnCNN, config={"in_nc": 1, "out_nc": 1, "nc": 64, "nb": 17},
        inputs=(_contract("noisy", 1, "GRAY", "noisy grayscale image (luma), float in [0, 1]"),),
        outputs=(_contract("denoised", 1, "GRAY", "denoised image; not clamped, as upstream"),),
        load_weights=load_kair_checkpoint, make_inputs=noisy_photo_inputs, metadata=_META, task="denoise",
        official=DNCNN_25,
    ),
    ModelSpec(
        name="denoise-dncnn-color",
        summary="DnCNN colour blind denoiser, 20 layers, residual output (dncnn_color_blind.pth layout)",
        factory=DnCNN, config={"in_nc": 3, "out_nc": 3, "nc": 64, "nb": 20},
        inputs=(_contract("noisy", 3, "RGB", "noisy RGB image, float in [0, 1]"),),
        outputs=(_contract("denoised", 3, "RGB", "denoised RGB; not clamped, as upstream"),),
        load_weights=load_kair_checkpoint, make_inputs=noisy_photo_inputs, metadata=_META, task="denoise",
        official=DNCNN_COLOR_BLIND,
    ),
)
