"""Small nets that one compression recipe breaks on purpose, shared by the recipe and search tests."""
from __future__ import annotations

import torch
from torch import nn


class OutlierNet(nn.Module):
    """One channel three thousand times larger than the rest: per-tensor int8 activations round the useful
    channels to zero, unless the edge between the two convs stays float."""

    def __init__(self):
        super().__init__()
        self.spread = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 3, 3, padding=1)
        with torch.no_grad():
            self.spread.weight[0] *= 3000.0
            self.mix.weight[:, 0] = 0.0

    def forward(self, x):
        return self.mix(torch.relu(self.spread(x)))


class OffsetNet(nn.Module):
    """The signal rides on an offset of 1000 between two convs: fp16 there keeps steps of 0.5, so the output
    misses 40 dB unless that edge stays fp32."""

    def __init__(self):
        super().__init__()
        self.lift = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Conv2d(8, 3, 1)
        with torch.no_grad():
            self.lift.bias += 1000.0
            self.drop.bias -= 1000.0 * self.drop.weight.sum(dim=(1, 2, 3))

    def forward(self, x):
        return self.drop(self.lift(x))
