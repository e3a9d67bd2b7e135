"""Attention R2U-Net for text deblurring, in LeeJunHyun/Image_Segmentation's `R2AttU_Net` layout.

RRCNN blocks (1x1 conv, then two recurrent blocks that each apply ONE shared conv-BN-ReLU t+1 times),
attention gates on the skips, nearest-up + conv decoder.
"""
from __future__ import annotations

import torch
from torch import nn

from functools import partial

from edgeport.models.checkpoint import load_state_dict_file
from edgeport.models.random_init import OutputInit
from edgeport.models.samples import photo_inputs
from edgeport.models.spec import ModelMetadata, ModelSpec, TensorContract, multiple_of
from edgeport.runtimes.pixels import PixelEncoding


def _conv_bn_relu(ch_in: int, ch_out: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(ch_in, ch_out, k, 1, k // 2, bias=True), nn.BatchNorm2d(ch_out), nn.ReLU(inplace=True)]


class Recurrent_block(nn.Module):  # noqa: N801 - upstream class names kept for recognisability
    def __init__(self, ch_out: int, t: int = 2) -> None:
        super().__init__()
        self.t = t
        self.conv = nn.Sequential(*_conv_bn_relu(ch_out, ch_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv(x)
        for _ in range(self.t):
            x1 = self.conv(x + x1)
        return x1


class RRCNN_block(nn.Module):  # noqa: N801
    def __init__(self, ch_in: int, ch_out: int, t: int = 2) -> None:
        super().__init__()
        self.RCNN = nn.Sequential(Recurrent_block(ch_out, t), Recurrent_block(ch_out, t))
        self.Conv_1x1 = nn.Conv2d(ch_in, ch_out, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv_1x1(x)
        return x + self.RCNN(x)


class up_conv(nn.Module):  # noqa: N801
    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), *_conv_bn_relu(ch_in, ch_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class Attention_block(nn.Module):  # noqa: N801
    def __init__(self, F_g: int, F_l: int, F_int: int) -> None:  # noqa: N803
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(F_g, F_int, 1, 1, 0, bias=True), nn.BatchNorm2d(F_int))
        self.W_x = nn.Sequential(nn.Conv2d(F_l, F_int, 1, 1, 0, bias=True), nn.BatchNorm2d(F_int))
        self.psi = nn.Sequential(nn.Conv2d(F_int, 1, 1, 1, 0, bias=True), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.relu(self.W_g(g) + self.W_x(x)))


class R2AttU_Net(nn.Module):  # noqa: N801
    def __init__(self, img_ch: int = 3, output_ch: int = 3, t: int = 2, width: int = 64) -> None:
        super().__init__()
        c = [width * 2 ** i for i in range(5)]
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.RRCNN1 = RRCNN_block(img_ch, c[0], t)
        for i in range(2, 6):
            setattr(self, f"RRCNN{i}", RRCNN_block(c[i - 2], c[i - 1], t))
        for i in range(5, 1, -1):
            setattr(self, f"Up{i}", up_conv(c[i - 1], c[i - 2]))
            setattr(self, f"Att{i}", Attention_block(c[i - 2], c[i - 2], c[i - 2] // 2))
            setattr(self, f"Up_RRCNN{i}", RRCNN_block(c[i - 1], c[i - 2], t))
        self.Conv_1x1 = nn.Conv2d(c[0], output_ch, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.RRCNN1(x)]
        for i in range(2, 6):
            skips.append(getattr(self, f"RRCNN{i}")(self.Maxpool(skips[-1])))
        d = skips[-1]
        for i in range(5, 1, -1):
            d = getattr(self, f"Up{i}")(d)
            gated = getattr(self, f"Att{i}")(g=d, x=skips[i - 2])
            d = getattr(self, f"Up_RRCNN{i}")(torch.cat((gated, d), dim=1))
        return self.Conv_1x1(d)


SPECS = (
    ModelSpec(
        name="deblur-r2attunet",
        summary="Attention R2U-Net (t=2) for text deblurring, RGB in and out in [-1, 1]",
        factory=R2AttU_Net, config={"img_ch": 3, "output_ch": 3, "t": 2, "width": 64},
        inputs=(TensorContract("blurred", (1, 3, 256, 256), value_range=(-1.0, 1.0),
                               normalization="pixel / 127.5 - 1", description="blurred RGB document photo",
                               pixels=PixelEncoding.symmetric()),),
        outputs=(TensorContract("deblurred", (1, 3, 256, 256), value_range=(-1.0, 1.0),
                                description="deblurred RGB, nominally [-1, 1] (not clamped, as upstream)",
                                pixels=PixelEncoding.symmetric()),),
        load_weights=partial(load_state_dict_file, prefer=("state_dict", "model")), make_inputs=photo_inputs, task="deblur",
        # default BatchNorm statistics erase the input: calibrate them, as training would
        random_init=OutputInit("Conv_1x1", mean=0.0, std=0.4),
        metadata=ModelMetadata(paper="Alom et al. 2018 (R2U-Net) with attention gates (Oktay et al. 2018)",
                               upstream="https://github.com/LeeJunHyun/Image_Segmentation (network.py R2AttU_Net)"),
        size_rule=multiple_of(16),
    ),
)
