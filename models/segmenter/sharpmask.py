"""Click-to-select segmenter: SqueezeNet 1.1 on RGB + 2 click maps, SharpMask-style refinement, sigmoid mask.

Refinement (Pinheiro et al. 2016): at each level a skip branch (conv on the backbone feature) and a top-down
branch (conv on the mask features) are concatenated, merged by a conv, and resized to the next skip's size.
At 512x512 the SqueezeNet maps are odd-sized (255, 127, 63, 31), so each step resizes to the skip's own size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeport.models.segmenter.squeezenet import squeezenet1_1_features

# (backbone layer whose output is the skip, its channels); deepest first
SKIPS = ((7, 256), (4, 128), (1, 64))


def _conv_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))


class RefineModule(nn.Module):
    def __init__(self, skip_ch: int, mask_ch: int, out_ch: int) -> None:
        super().__init__()
        self.skip = _conv_relu(skip_ch, mask_ch)
        self.top_down = _conv_relu(mask_ch, mask_ch)
        self.merge = _conv_relu(2 * mask_ch, out_ch)

    def forward(self, mask_feat: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(mask_feat, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge(torch.cat([self.skip(skip), self.top_down(up)], 1))


class ClickSegmenter(nn.Module):
    def __init__(self, head_channels: tuple[int, ...] = (32, 16, 8, 8)) -> None:
        super().__init__()
        self.features = squeezenet1_1_features(in_channels=5)
        self.coarse = _conv_relu(512, head_channels[0])
        self.refine = nn.ModuleList(
            RefineModule(skip_ch, head_channels[i], head_channels[i + 1]) for i, (_, skip_ch) in enumerate(SKIPS))
        self.predict = nn.Conv2d(head_channels[-1], 1, 3, padding=1)

    def forward(self, image: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, clicks / 255.0], 1)
        skips = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in dict(SKIPS):
                skips[i] = x
        mask = self.coarse(x)
        for (index, _), refine in zip(SKIPS, self.refine):
            mask = refine(mask, skips[index])
        logits = F.interpolate(self.predict(mask), size=image.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)
