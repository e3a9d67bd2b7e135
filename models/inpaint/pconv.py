"""Partial-convolution U-Net (Liu et al. 2018) with NVIDIA's PartialConv2d semantics, multi-channel masks.

Masks are 1 where pixels are valid and 0 in holes. Per layer: out = conv(X*M) * k*k*C / sum(M) (+ bias) where
sum(M) > 0, else 0; the new mask is 1 wherever sum(M) > 0.
Two export-friendly forms, numerically identical to the reference (tests/test_zoo.py):
- conv(M, ones[out, in, k, k]) equals conv(sum_c M, ones[out, 1, k, k]) (the mask is summed over channels once);
- the reference ratio k*k*C / (sum + 1e-8) turns the 1e-8 into 0 in fp16 and makes inf * 0 = NaN in holes;
  sum(M) counts pixels (a whole number), so k*k*C / max(sum, 1) is exact wherever sum >= 1 and finite at 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PartialConv2d(nn.Conv2d):
    """Parameters as nn.Conv2d (`weight`, `bias`), like NVIDIA's layer; the all-ones mask kernel is not stored."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        k_h, k_w = self.kernel_size
        window = float(k_h * k_w * self.in_channels)
        # coverage per output channel straight from the channel-summed mask: no broadcast, which litert-torch's
        # layout pass rejects ('tfl.mul' operands not broadcast-compatible)
        ones = torch.ones(self.out_channels, 1, k_h, k_w, dtype=mask.dtype, device=mask.device)
        with torch.no_grad():
            coverage = F.conv2d(mask.sum(dim=1, keepdim=True), ones, None, self.stride, self.padding,
                                self.dilation)
            update = torch.clamp(coverage, 0.0, 1.0)
            # tensor / tensor: a scalar / tensor lowers to Core ML's `inverse`, which adds 1e-4 before dividing
            ratio = (update * window) / torch.clamp(coverage, min=1.0)
        raw = F.conv2d(x * mask, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        out = raw * ratio
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * update
        return out, update


def reference_partial_conv(layer: PartialConv2d, x: torch.Tensor, mask: torch.Tensor,
                           eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """NVIDIA's formulation, verbatim in maths: kept so tests can prove the rewrite identical."""
    k_h, k_w = layer.kernel_size
    updater = torch.ones(layer.out_channels, layer.in_channels, k_h, k_w, dtype=x.dtype)
    update = F.conv2d(mask, updater, None, layer.stride, layer.padding, layer.dilation, 1)
    ratio = (k_h * k_w * layer.in_channels) / (update + eps)
    update = torch.clamp(update, 0, 1)
    ratio = ratio * update
    raw = F.conv2d(x * mask, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    if layer.bias is not None:
        bias = layer.bias.view(1, -1, 1, 1)
        return ((raw - bias) * ratio + bias) * update, update
    return raw * ratio, update


class PCBActiv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, bn: bool = True, sample: str = "none-3", activ: str | None = "relu",
                 conv_bias: bool = False) -> None:
        super().__init__()
        kernel, stride = {"down-7": (7, 2), "down-5": (5, 2), "down-3": (3, 2)}.get(sample, (3, 1))
        self.conv = PartialConv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=conv_bias)
        self.bn = nn.BatchNorm2d(out_ch) if bn else None
        self.activation = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), None: None}[activ]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, h_mask = self.conv(x, mask)
        if self.bn is not None:
            h = self.bn(h)
        if self.activation is not None:
            h = self.activation(h)
        return h, h_mask


class PConvUNet(nn.Module):
    def __init__(self, layer_size: int = 7, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        chans = [in_channels, w, 2 * w, 4 * w] + [8 * w] * (layer_size - 3)
        samples = ["down-7", "down-5", "down-5"] + ["down-3"] * (layer_size - 3)
        self.layer_size = layer_size
        for i in range(1, layer_size + 1):
            setattr(self, f"enc_{i}", PCBActiv(chans[i - 1], chans[i], bn=i > 1, sample=samples[i - 1]))
        for i in range(layer_size, 1, -1):
            setattr(self, f"dec_{i}", PCBActiv(chans[i] + chans[i - 1], chans[i - 1], activ="leaky"))
        self.dec_1 = PCBActiv(chans[1] + in_channels, in_channels, bn=False, activ=None, conv_bias=True)
        self.min_multiple = 2 ** layer_size

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hs, masks = [image], [mask]
        for i in range(1, self.layer_size + 1):
            h, m = getattr(self, f"enc_{i}")(hs[-1], masks[-1])
            hs.append(h)
            masks.append(m)
        h, m = hs[-1], masks[-1]
        for i in range(self.layer_size, 0, -1):
            h = torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), hs[i - 1]], dim=1)
            m = torch.cat([F.interpolate(m, scale_factor=2, mode="nearest"), masks[i - 1]], dim=1)
            h, m = getattr(self, f"dec_{i}")(h, m)
        return h
