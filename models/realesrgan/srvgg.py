"""SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3), with BasicSR's `body.N` names."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 32,
                 upscale: int = 4, act_type: str = "prelu", clamp_output: bool = True) -> None:
        super().__init__()
        self.upscale = upscale
        self.clamp_output = clamp_output
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), self._activation(act_type, num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(self._activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @staticmethod
    def _activation(kind: str, channels: int) -> nn.Module:
        if kind == "prelu":
            return nn.PReLU(num_parameters=channels)
        if kind == "relu":
            return nn.ReLU(inplace=True)
        if kind == "leakyrelu":
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)
        raise ValueError(f"unknown act_type {kind!r}: use prelu, relu or leakyrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return out.clamp(0.0, 1.0) if self.clamp_output else out
