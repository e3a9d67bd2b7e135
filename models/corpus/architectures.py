"""The architecture corpus: small, seeded versions of the networks app teams bring, in plain PyTorch.

Each factory builds its network at seed 0 and initialises it as the zoo does for random weights (BatchNorm
statistics measured on the bundled photos, every conv scaled to unit output spread), so outputs depend on the
input and parity is measured on a realistic signal. Use any of them as a team would its own model:

    edgeport export --model models/corpus/architectures.py:mobilenet_v2 --input 1x3x64x64
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeport.models.corpus.blocks import (BasicBlock, ConvNeXtBlock, InvertedResidual, LayerNorm2d,
                                           ShiftedWindowBlock, SqueezeExcite, TransformerBlock, conv_bn)
from edgeport.models.random_init import calibrate_batchnorm, unit_variance_init
from edgeport.models.samples import fit_photo, parity_photos
from edgeport.models.spec import TensorContract

INPUT_SIZE = 64   # every factory's example input: 1x3x64x64


class Classifier(nn.Module):
    """features -> global average pool -> dropout -> linear: logits for 10 classes."""
    def __init__(self, features: nn.Module, channels: int, classes: int = 10) -> None:
        super().__init__()
        self.features, self.head = features, nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def _mobilenet_v2() -> nn.Module:
    # (expansion, channels, repeats, stride) at width 0.5, stages cut after 64 channels
    stages, c_in, layers = ((1, 8, 1, 1), (6, 16, 2, 2), (6, 16, 2, 2), (6, 32, 2, 2), (6, 48, 1, 1)), 16, []
    layers.append(conv_bn(3, c_in, 3, 2, act=nn.ReLU6))
    for t, c, n, s in stages:
        for i in range(n):
            layers.append(InvertedResidual(c_in, c, t, 3, s if i == 0 else 1, nn.ReLU6))
            c_in = c
    return Classifier(nn.Sequential(*layers, conv_bn(c_in, 128, 1, act=nn.ReLU6)), 128)


def _mobilenet_v3() -> nn.Module:
    # MobileNetV3-Small's opening: (kernel, expansion, channels, SE, activation, stride)
    rows = ((3, 1, 16, True, nn.ReLU, 2), (3, 4, 24, False, nn.ReLU, 2), (3, 3, 24, False, nn.ReLU, 1),
            (5, 4, 40, True, nn.Hardswish, 2), (5, 3, 40, True, nn.Hardswish, 1))
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)]
    c_in = 16
    for k, t, c, se, act, s in rows:
        squeeze = SqueezeExcite(c_in * t, max(8, c_in * t // 4), nn.ReLU, nn.Hardsigmoid) if se else None
        layers.append(InvertedResidual(c_in, c, t, k, s, act, squeeze))
        c_in = c
    return Classifier(nn.Sequential(*layers, conv_bn(c_in, 96, 1, act=nn.Hardswish)), 96)


def _efficientnet_b0_stage() -> nn.Module:
    # stem and EfficientNet-B0's stages 1-3 at width 0.5: MBConv with SiLU and sigmoid SE
    rows = ((1, 8, 1, 3, 1), (6, 12, 2, 3, 2), (6, 20, 2, 5, 2))
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=nn.SiLU)]
    c_in = 16
    for t, c, n, k, s in rows:
        for i in range(n):
            se = SqueezeExcite(c_in * t, max(4, c_in // 4), nn.SiLU, nn.Sigmoid)
            layers.append(InvertedResidual(c_in, c, t, k, s if i == 0 else 1, nn.SiLU, se))
            c_in = c
    return Classifier(nn.Sequential(*layers, conv_bn(c_in, 80, 1, act=nn.SiLU)), 80)


def _resnet18() -> nn.Module:
    widths, layers, c_in = (16, 32, 64, 128), [], 16
    stem = nn.Sequential(conv_bn(3, c_in, 7, 2), nn.MaxPool2d(3, 2, 1))
    for i, c in enumerate(widths):
        layers += [BasicBlock(c_in, c, 1 if i == 0 else 2), BasicBlock(c, c)]
        c_in = c
    return Classifier(nn.Sequential(stem, *layers), c_in)


class UNet(nn.Module):
    """Three levels: conv-BN-ReLU pairs, max-pool down, transposed-conv up, skip concatenation; image out."""
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        pair = lambda a, b: nn.Sequential(conv_bn(a, b), conv_bn(b, b))  # noqa: E731
        self.downs = nn.ModuleList(pair(a, b) for a, b in zip((3,) + widths[:-1], widths))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, 2) for a, b in zip(widths[:-1], widths[1:]))
        self.merges = nn.ModuleList(pair(2 * a, a) for a in widths[:-1])
        self.out = nn.Conv2d(widths[0], 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = [], x
        for i, down in enumerate(self.downs):
            y = down(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for up, merge, skip in zip(reversed(self.ups), reversed(self.merges), reversed(skips[:-1])):
            y = merge(torch.cat([up(y), skip], 1))
        return torch.sigmoid(self.out(y) + x)


def _convnext() -> nn.Module:
    stem = nn.Sequential(nn.Conv2d(3, 32, 4, 4), LayerNorm2d(32, eps=1e-6))
    down = nn.Sequential(LayerNorm2d(32, eps=1e-6), nn.Conv2d(32, 64, 2, 2))
    return Classifier(nn.Sequential(stem, ConvNeXtBlock(32), ConvNeXtBlock(32), down, ConvNeXtBlock(64)), 64)


class VisionTransformer(nn.Module):
    """Patch embedding (8x8), learned positions, a ViT block, a Swin shifted-window block, class logits."""
    def __init__(self, dim: int = 48, heads: int = 4, grid: int = INPUT_SIZE // 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.positions = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.5)
        self.vit, self.swin = TransformerBlock(dim, heads), ShiftedWindowBlock(dim, heads, window=4)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.embed(x)
        b, c, h, w = y.shape
        tokens = self.vit(y.flatten(2).transpose(1, 2) + self.positions)
        tokens = self.swin(tokens.reshape(b, h, w, c)).reshape(b, h * w, c)
        return self.head(self.norm(tokens).mean(1))


class SegmentationHead(nn.Module):
    """A small backbone (strides 4, 8, 16), an FPN top-down path (bilinear, align_corners=True) and a DeepLab
    ASPP (atrous rates 1, 2, 4 and image pooling, bilinear with align_corners=False); 5-class logits at input size."""
    def __init__(self, width: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.c2 = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 16, 3, 2))
        self.c3, self.c4 = conv_bn(16, 32, 3, 2), conv_bn(32, 64, 3, 2)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in (16, 32, 64))
        self.atrous = nn.ModuleList(conv_bn(width, width, 3 if r > 1 else 1, dilation=r) for r in (1, 2, 4))
        self.pooled = nn.Conv2d(width, width, 1)
        self.project = conv_bn(4 * width, width, 1)
        self.classify = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.c2(x)
        c3 = self.c3(c2)
        feats = [lat(c) for lat, c in zip(self.lateral, (c2, c3, self.c4(c3)))]
        p = feats[2]
        for lower in (feats[1], feats[0]):   # top-down: upsample, add the lateral
            p = lower + F.interpolate(p, size=lower.shape[-2:], mode="bilinear", align_corners=True)
        pooled = F.interpolate(F.relu(self.pooled(F.adaptive_avg_pool2d(p, 1))), size=p.shape[-2:],
                               mode="bilinear", align_corners=False)
        y = self.project(torch.cat([branch(p) for branch in self.atrous] + [pooled], 1))
        return F.interpolate(self.classify(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class TwoHeads(nn.Module):
    """A shared encoder and two outputs, as a portrait app runs them: a person mask (sigmoid, input size) and a
    depth map (softplus, quarter size)."""
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3, 2), conv_bn(32, 32, 3, dilation=2))
        self.mask = nn.Sequential(conv_bn(32, 16, 3), nn.Conv2d(16, 1, 1))
        self.depth = nn.Sequential(conv_bn(32, 16, 3), nn.Conv2d(16, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        mask = torch.sigmoid(F.interpolate(self.mask(f), scale_factor=4, mode="bilinear", align_corners=False))
        return mask, F.softplus(self.depth(f))


def _example_batch() -> list[torch.Tensor]:
    """The bundled parity photos at 64x64 in [0, 1], as one batch: what the random init is measured on."""
    contract = TensorContract("image", (1, 3, INPUT_SIZE, INPUT_SIZE))
    return [torch.from_numpy(np.concatenate([fit_photo(p, contract) for _, p in parity_photos()]))]


def seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """The factory a team would write, plus the zoo's random init (models/random_init.py) at seed 0."""
    def factory() -> nn.Module:
        torch.manual_seed(0)
        model = build()
        example = _example_batch()
        calibrate_batchnorm(model, example)
        unit_variance_init(model, example)
        calibrate_batchnorm(model, example)   # the convs were rescaled: measure the statistics again
        return model.eval()
    factory.__doc__ = build.__doc__
    return factory


mobilenet_v2 = seeded(_mobilenet_v2)
mobilenet_v3 = seeded(_mobilenet_v3)
efficientnet_b0_stage = seeded(_efficientnet_b0_stage)
resnet18 = seeded(_resnet18)
unet = seeded(UNet)
convnext = seeded(_convnext)
vit_swin = seeded(VisionTransformer)
deeplab_fpn = seeded(SegmentationHead)
two_outputs = seeded(TwoHeads)

# name -> factory, in the order the matrix reports them; every input is 1x3x64x64 in [0, 1]
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "mobilenet_v2": mobilenet_v2, "mobilenet_v3": mobilenet_v3, "efficientnet_b0_stage": efficientnet_b0_stage,
    "resnet18": resnet18, "unet": unet, "convnext": convnext, "vit_swin": vit_swin, "deeplab_fpn": deeplab_fpn,
    "two_outputs": two_outputs,
}
