"""FCRN depth (Laina et al. 2016): an encoder, then up-projection blocks with fast up-convolutions.

A fast up-convolution equals "unpool by zero insertion, then a 5x5 conv": output pixels at (even, even),
(even, odd), (odd, even), (odd, odd) see only 3x3, 3x2, 2x3 and 2x2 input taps. The four small convs are
interleaved by pixel_shuffle, which every converter takes (tests/test_depth.py proves the identity).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeport.models.backbones.mobilenet_v1 import MobileNetV1
from edgeport.models.backbones.resnet import ResNet50Trunk

# (kernel, F.pad (left, right, top, bottom)) for output rows/cols of parity (even, even), (even, odd),
# (odd, even), (odd, odd); pixel_shuffle puts channel group k at (k // 2, k % 2).
_TAPS = (((3, 3), (1, 1, 1, 1)), ((3, 2), (0, 1, 1, 1)), ((2, 3), (1, 1, 0, 1)), ((2, 2), (0, 1, 0, 1)))


class FastUpConv(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a, self.conv_b, self.conv_c, self.conv_d = (nn.Conv2d(c_in, c_out, k) for k, _ in _TAPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs = (self.conv_a, self.conv_b, self.conv_c, self.conv_d)
        outs = [conv(F.pad(x, pad)) for conv, (_, pad) in zip(convs, _TAPS)]
        n, c, h, w = outs[0].shape
        # interleave: stack the four as channel groups (c, 4) so pixel_shuffle places group k at (k//2, k%2)
        return F.pixel_shuffle(torch.stack(outs, dim=2).reshape(n, c * 4, h, w), 2)


class UpProjection(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up1, self.bn1 = FastUpConv(c_in, c_out), nn.BatchNorm2d(c_out)
        self.conv, self.bn2 = nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out)
        self.up2, self.bn3 = FastUpConv(c_in, c_out), nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn2(self.conv(F.relu(self.bn1(self.up1(x)))))
        return F.relu(branch + self.bn3(self.up2(x)))


class FCRN(nn.Module):
    """encoder -> 1x1 conv + BN -> 4 up-projections -> 3x3 conv to depth, at half the input resolution."""

    def __init__(self, backbone: str = "resnet50", bottleneck: int = 1024, width: float = 1.0,
                 layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        if backbone == "resnet50":   # fewer `layers` only for reduced test configs: the checkpoint has (3, 4, 6, 3)
            self.encoder: nn.Module = ResNet50Trunk(tuple(layers), width=max(8, int(64 * width)))
        elif backbone == "mobilenet_v1":
            self.encoder = MobileNetV1(width=width, output_stride=32)
        else:
            raise ValueError(f"backbone must be resnet50 or mobilenet_v1, not {backbone!r}")
        self.reduce = nn.Sequential(nn.Conv2d(self.encoder.out_channels, bottleneck, 1), nn.BatchNorm2d(bottleneck))
        chans = [bottleneck // 2 ** i for i in range(5)]
        self.up = nn.Sequential(*(UpProjection(chans[i], chans[i + 1]) for i in range(4)))
        self.predict = nn.Conv2d(chans[-1], 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.relu(self.predict(self.up(self.reduce(self.encoder(image)))))


def unpool_conv5x5_reference(layer: FastUpConv, x: torch.Tensor) -> torch.Tensor:
    """The definition a fast up-convolution must equal: zero-insertion unpooling, then one 5x5 conv whose
    taps are the four small kernels placed where they land."""
    c_out, c_in = layer.conv_a.out_channels, layer.conv_a.in_channels
    kernel = torch.zeros(c_out, c_in, 5, 5)
    # output parity (py, px) reads unpooled rows p + a with a even (py = 0: a in -2,0,2) or odd (py = 1: -1,1)
    for conv, (py, px) in zip((layer.conv_a, layer.conv_b, layer.conv_c, layer.conv_d), ((0, 0), (0, 1), (1, 0), (1, 1))):
        rows = [0, 2, 4] if py == 0 else [1, 3]
        cols = [0, 2, 4] if px == 0 else [1, 3]
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                kernel[:, :, r, c] += conv.weight[:, :, i, j]
    n, _, h, w = x.shape
    unpooled = torch.zeros(n, c_in, 2 * h, 2 * w)
    unpooled[:, :, ::2, ::2] = x
    out = F.conv2d(unpooled, kernel, padding=2)
    # each parity has its own bias in the fast form
    bias = torch.stack([layer.conv_a.bias, layer.conv_b.bias, layer.conv_c.bias, layer.conv_d.bias])
    for k, (py, px) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, py::2, px::2] += bias[k].view(1, -1, 1, 1)
    return out
