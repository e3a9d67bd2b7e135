"""Parameter and multiply-accumulate counts, measured by running the model on the meta device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from edgeport.models.errors import ModelError


@dataclass(frozen=True)
class ModelProfile:
    params: int
    macs: int
    input_shapes: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "input_shapes": [list(s) for s in self.input_shapes]}


def _layer_macs(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    kernel = 1
    for k in module.kernel_size:
        kernel *= k
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return x.numel() * (module.out_channels // module.groups) * kernel  # each input scatters a kernel
    return out.numel() * (module.in_channels // module.groups) * kernel


def profile_model(build: Callable[[], nn.Module], input_shapes: list[tuple[int, ...]]) -> ModelProfile:
    """Counts conv, transposed conv and linear MACs (the work that dominates these nets) at the given input:
    on the meta device (no memory, no compute), or on the CPU with zero inputs when the forward reads a
    tensor's value (e.g. a window size taken with .item()), which meta tensors cannot give, or when the factory
    itself computes (a team's factory that calibrates or loads weights; a custom factory's failure arrives as
    ModelError)."""
    try:
        with torch.device("meta"):
            module = build().eval()
            inputs = [torch.empty(s) for s in input_shapes]
        macs = _count_macs(module, inputs)
    except (RuntimeError, NotImplementedError, ModelError):
        module = build().eval()
        macs = _count_macs(module, [torch.zeros(s) for s in input_shapes])
    params = sum(p.numel() for p in module.parameters())
    return ModelProfile(params=params, macs=macs, input_shapes=tuple(tuple(s) for s in input_shapes))


def _count_macs(module: nn.Module, inputs: list[torch.Tensor]) -> int:
    total = [0]

    def hook(mod: nn.Module, args: tuple, out: torch.Tensor | tuple) -> None:
        main = out[0] if isinstance(out, (tuple, list)) else out   # e.g. a partial conv returns (x, mask)
        total[0] += _layer_macs(mod, args[0], main)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]
