"""SAM saliency (Cornia et al. 2018) on a MobileNet v1 backbone: Attentive ConvLSTM + learned Gaussian priors.

Every step reads the same features X (h0 = c0 = 0): Z = Va * tanh(Wa * H + Ua * X); A = softmax of Z over all
positions; X~ = A . X; I, F, O = sigmoid(W * X~ + U * H); C = F . C + I . tanh(Wc * X~ + Uc * H);
H = O . tanh(C). All convs 3x3. The priors depend only on parameters, so converters fold them to constants.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from edgeport.models.backbones.mobilenet_v1 import MobileNetV1


def _conv(c_in: int, c_out: int, k: int = 3, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k // 2), dilation=dilation, bias=bias)


class AttentiveConvLSTM(nn.Module):
    def __init__(self, channels: int, steps: int = 4) -> None:
        super().__init__()
        self.steps = steps
        self.W_a, self.U_a, self.V_a = _conv(channels, channels), _conv(channels, channels), _conv(channels, 1)
        # input-to-state (W_*) and state-to-state (U_*) convs of the i, f, o, c gates, stacked
        self.W = _conv(channels, 4 * channels)
        self.U = _conv(channels, 4 * channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        hidden = torch.zeros_like(x)
        cell = torch.zeros_like(x)
        ua_x = self.U_a(x)                                   # X is the same at every step
        for _ in range(self.steps):
            z = self.V_a(torch.tanh(self.W_a(hidden) + ua_x))
            attention = torch.softmax(z.reshape(n, 1, h * w), dim=-1).reshape(n, 1, h, w)
            gates = self.W(x * attention) + self.U(hidden)
            i, f, o, g = torch.split(gates, c, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden


class GaussianPriors(nn.Module):
    """N learned 2-D Gaussians (means and sigmas clamped as in SAM), each scaled to peak at 1."""

    def __init__(self, count: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.mu = nn.Parameter(0.3 + 0.4 * torch.rand(count, 2, generator=generator))
        self.sigma = nn.Parameter(0.2 + 0.5 * torch.rand(count, 2, generator=generator))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        n, _, h, w = like.shape
        mu_x, mu_y = self.mu[:, 0].clamp(0.25, 0.75), self.mu[:, 1].clamp(0.35, 0.65)
        s_x, s_y = self.sigma[:, 0].clamp(0.1, 0.9), self.sigma[:, 1].clamp(0.2, 0.8)
        ys = torch.linspace(0, 1, h, dtype=like.dtype, device=like.device).view(1, h, 1)
        xs = torch.linspace(0, 1, w, dtype=like.dtype, device=like.device).view(1, 1, w)
        g = torch.exp(-((xs - mu_x.view(-1, 1, 1)) ** 2 / (2 * s_x.view(-1, 1, 1) ** 2)
                        + (ys - mu_y.view(-1, 1, 1)) ** 2 / (2 * s_y.view(-1, 1, 1) ** 2)))
        g = g / g.amax(dim=(1, 2), keepdim=True)
        return g.unsqueeze(0).expand(n, -1, -1, -1)


class SAMSaliency(nn.Module):
    def __init__(self, output_stride: int = 8, width: float = 1.0, lstm_channels: int = 512, steps: int = 4,
                 priors: int = 16) -> None:
        super().__init__()
        self.backbone = MobileNetV1(width=width, output_stride=output_stride)
        self.reduce = nn.Sequential(_conv(self.backbone.out_channels, lstm_channels), nn.ReLU(inplace=True))
        self.lstm = AttentiveConvLSTM(lstm_channels, steps)
        self.priors1, self.priors2 = GaussianPriors(priors), GaussianPriors(priors)
        self.conv1 = _conv(lstm_channels + priors, lstm_channels, k=5, dilation=4)
        self.conv2 = _conv(lstm_channels + priors, lstm_channels, k=5, dilation=4)
        self.predict = nn.Conv2d(lstm_channels, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.lstm(self.reduce(self.backbone(image)))
        x = F.relu(self.conv1(torch.cat([x, self.priors1(x)], 1)))
        x = F.relu(self.conv2(torch.cat([x, self.priors2(x)], 1)))
        saliency = F.relu(self.predict(x))
        return F.interpolate(saliency, size=image.shape[-2:], mode="bilinear", align_corners=False)
