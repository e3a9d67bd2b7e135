"""Real-ESRGAN upscalers (xinntao/Real-ESRGAN, BasicSR architectures)."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeport.models.checkpoint import load_strict, read_checkpoint, unwrap_state_dict
from edgeport.models.errors import CheckpointError
from edgeport.models.ncnn_files import is_ncnn_path, read_ncnn
from edgeport.models.random_init import OutputInit
from edgeport.models.realesrgan.ncnn_weights import realesrgan_from_ncnn
from edgeport.models.realesrgan import releases
from edgeport.models.realesrgan.rrdbnet import RRDBNet
from edgeport.models.realesrgan.srvgg import SRVGGNetCompact
from edgeport.models.samples import photo_inputs
from edgeport.models.spec import ModelMetadata, ModelSpec, TensorContract, multiple_of
from edgeport.runtimes.pixels import PixelEncoding


def load_basicsr_checkpoint(module: nn.Module, path: Path) -> None:
    """Real-ESRGAN releases wrap the state dict in 'params_ema' (preferred) or 'params'; the same release
    also ships as ncnn .param/.bin files, read into the same names."""
    if is_ncnn_path(path):
        load_ncnn_release(module, path)
        return
    state = unwrap_state_dict(read_checkpoint(path), prefer=("params_ema", "params"))
    load_strict(module, state, source=str(path))


def load_ncnn_release(module: nn.Module, path: Path) -> None:
    import torch

    found = realesrgan_from_ncnn(read_ncnn(path))
    state = {k: torch.from_numpy(v.copy()) for k, v in found.state.items()}
    try:
        load_strict(module, state, source=str(path))
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (the ncnn graph is {found.describe()})") from None


def _lr_image(size: int) -> TensorContract:
    return TensorContract("image", (1, 3, size, size), description="low-resolution RGB tile", pixels=PixelEncoding.unit())


def _hr_image(size: int) -> TensorContract:
    return TensorContract("upscaled", (1, 3, size, size), description="upscaled RGB, clamped to [0, 1]",
                          pixels=PixelEncoding.unit())


# Default init clamps ~94% of RRDBNet's output to 0, so parity would compare zeros: centre it.
centre_output_init = OutputInit("conv_last", mean=0.5, std=0.25)

_PAPER = "Wang et al. 2021, Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data"
_UPSTREAM = "https://github.com/xinntao/Real-ESRGAN (architectures: XPixelGroup/BasicSR)"

def _upscaler(name: str, summary: str, factory: type, config: dict, side: int, scale: int, **extra: object) -> ModelSpec:
    """A Real-ESRGAN spec: one RGB tile in, the upscaled tile out, BasicSR (or ncnn) weights."""
    return ModelSpec(name=name, summary=summary, factory=factory, config=config, inputs=(_lr_image(side),),
                     outputs=(_hr_image(side * scale),), load_weights=load_basicsr_checkpoint,
                     make_inputs=photo_inputs, metadata=ModelMetadata(paper=_PAPER, upstream=_UPSTREAM,
                                                                      notes=str(extra.pop("notes", ""))), **extra)


_RRDB = {"num_feat": 64, "num_grow_ch": 32}

SPECS = (
    _upscaler("realesrgan-x4plus", "RRDBNet x4 upscaler, 23 RRDB blocks (RealESRGAN_x4plus.pth)", RRDBNet,
              {"num_block": 23, **_RRDB, "scale": 4}, 64, 4, random_init=centre_output_init,
              official=releases.X4PLUS),
    _upscaler("realesrgan-x2plus", "RRDBNet x2 upscaler; pixel_unshuffle(2) in front (RealESRGAN_x2plus.pth)",
              RRDBNet, {"num_block": 23, **_RRDB, "scale": 2}, 64, 2, random_init=centre_output_init,
              size_rule=multiple_of(2), official=releases.X2PLUS, notes="input height and width must be even"),
    _upscaler("realesr-general-x4v3", "SRVGGNetCompact x4, 32 convs + PReLU, PixelShuffle (realesr-general-x4v3.pth)",
              SRVGGNetCompact, {"num_conv": 32, "num_feat": 64, "upscale": 4}, 128, 4,
              official=releases.GENERAL_X4V3),
    _upscaler("realesr-animevideov3", "SRVGGNetCompact x4 for anime video, 16 convs + PReLU "
              "(realesr-animevideov3.pth / ncnn -x4)", SRVGGNetCompact, {"num_conv": 16, "num_feat": 64, "upscale": 4},
              128, 4, official=releases.ANIMEVIDEO_V3),
    _upscaler("realesrgan-x4plus-anime", "RRDBNet x4 for anime illustrations, 6 RRDB blocks "
              "(RealESRGAN_x4plus_anime_6B.pth / ncnn)", RRDBNet, {"num_block": 6, **_RRDB, "scale": 4}, 64, 4,
              random_init=centre_output_init, official=releases.X4PLUS_ANIME),
)
