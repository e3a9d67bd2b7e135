"""GMCNN generator (Wang et al. 2018), in shepnerd/inpainting_gmcnn's PyTorch layout.

Three columns (7/5/3 kernels) of reflection-padded convs with ELU, stride-2 downs and dilations 2/4/8/16,
merged and decoded to RGB in [-1, 1]. Module indices match upstream (`EB2.13` is the conv after the
upsampling at `EB2.12`), so its checkpoints load strictly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsample(nn.Module):
    """Upstream's PureUpsampling: bilinear uses align_corners=True."""

    def __init__(self, scale: int, mode: str = "bilinear") -> None:
        super().__init__()
        self.scale, self.mode = scale, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)


def _column(in_ch: int, ch: int, k: int, dilations: tuple[int, ...], tail: list[tuple]) -> tuple[nn.ModuleList, list[int]]:
    """The shared encoder of a column, then its own tail; returns the layers and each one's reflect pad."""
    p = k // 2
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, ch, k), nn.Conv2d(ch, ch * 2, k, stride=2), nn.Conv2d(ch * 2, ch * 2, k),
        nn.Conv2d(ch * 2, ch * 4, k, stride=2), nn.Conv2d(ch * 4, ch * 4, k), nn.Conv2d(ch * 4, ch * 4, k),
    ]
    pads = [p] * 6
    for d in dilations:
        layers.append(nn.Conv2d(ch * 4, ch * 4, k, dilation=d))
        pads.append(p * d)
    layers += [nn.Conv2d(ch * 4, ch * 4, k), nn.Conv2d(ch * 4, ch * 4, k)]
    pads += [p, p]
    for item in tail:
        if item[0] == "up":
            layers.append(Upsample(item[1], item[2]))
            pads.append(0)
        else:
            layers.append(nn.Conv2d(item[1], item[2], k))
            pads.append(p)
    return nn.ModuleList(layers), pads


class GMCNN(nn.Module):
    def __init__(self, in_channels: int = 4, out_channels: int = 3, cnum: int = 32,
                 dilations: tuple[int, ...] = (2, 4, 8, 16)) -> None:
        super().__init__()
        ch = cnum
        self.EB1, self.pads1 = _column(in_channels, ch, 7, dilations, [("up", 4, "bilinear")])
        self.EB2, self.pads2 = _column(in_channels, ch, 5, dilations, [
            ("up", 2, "nearest"), ("conv", ch * 4, ch * 2), ("conv", ch * 2, ch * 2), ("up", 2, "bilinear")])
        self.EB3, self.pads3 = _column(in_channels, ch, 3, dilations, [
            ("up", 2, "nearest"), ("conv", ch * 4, ch * 2), ("conv", ch * 2, ch * 2), ("up", 2, "nearest"),
            ("conv", ch * 2, ch), ("conv", ch, ch)])
        self.decoding_layers = nn.ModuleList([nn.Conv2d(ch * 7, ch // 2, 3), nn.Conv2d(ch // 2, out_channels, 3)])
        self.min_size = 4 * (3 * max(dilations)) + 4   # reflect pads need more pixels than they pad

    @staticmethod
    def _run(x: torch.Tensor, layers: nn.ModuleList, pads: list[int]) -> torch.Tensor:
        for layer, pad in zip(layers, pads):
            x = layer(F.pad(x, (pad,) * 4, mode="reflect") if pad else x)
            if pad:
                x = F.elu(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = torch.cat((self._run(x, self.EB1, self.pads1), self._run(x, self.EB2, self.pads2),
                            self._run(x, self.EB3, self.pads3)), 1)
        out = F.elu(self.decoding_layers[0](F.pad(merged, (1,) * 4, mode="reflect")))
        out = self.decoding_layers[1](F.pad(out, (1,) * 4, mode="reflect"))
        return torch.clamp(out, -1.0, 1.0)
