"""MobileNet v1 (Howard et al. 2017) with an output-stride option: strides past the target become dilations."""
from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of the 13 depthwise-separable blocks after the stem
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, pad, dilation, groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """`layers.0` is the stem; `layers.N` (N >= 1) a block of depthwise (`.0`) and pointwise (`.1`) conv-BN-ReLU."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        ch = lambda c: max(8, int(c * width))  # noqa: E731
        layers: list[nn.Module] = [_conv_bn(in_channels, ch(32), 3, stride=2)]
        current, dilation, c_in = 2, 1, ch(32)
        for c_out, stride in BLOCKS:
            if stride == 2 and current >= output_stride:
                dilation *= 2        # keep the resolution, widen the receptive field instead
                stride = 1
            else:
                current *= stride
            layers.append(nn.Sequential(_conv_bn(c_in, c_in, 3, stride, dilation, groups=c_in),
                                        _conv_bn(c_in, ch(c_out), 1)))
            c_in = ch(c_out)
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
