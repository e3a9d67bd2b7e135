"""Random init that looks like a trained net at the output, so parity is measured on a realistic signal."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def rescale_layer_output(model: nn.Module, layer: nn.Conv2d, example_inputs: Sequence[torch.Tensor],
                         mean: float, std: float) -> None:
    """Scale `layer`'s weight and shift its bias so that, on the example, its output has this mean and std."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, a, out: captured.append(out))
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        handle.remove()
    out = captured[0]
    scale = std / max(float(out.std()), 1e-6)
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.mul_(scale).add_(mean - float(out.mean()) * scale)


def seeded_uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return low + (high - low) * torch.rand(*shape, generator=generator)
