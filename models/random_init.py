"""Random init that looks like a trained net at the output, so parity is measured on a realistic signal."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


def rescale_layer_output(model: nn.Module, layer: nn.Conv2d, example_inputs: Sequence[torch.Tensor],
                         mean: float, std: float) -> None:
    """Scale `layer`'s weight and shift its bias so that, on the example, its output has this mean and std."""
    model.eval()   # measure what inference computes: BatchNorm on its running statistics, not the batch's
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


def calibrate_batchnorm(model: nn.Module, example_inputs: Sequence[torch.Tensor]) -> None:
    """Set every BatchNorm's running mean and variance to the statistics of the example batch, as training
    would. With the default (0, 1) a deep random net such as ResNet-50 loses its input by the last layer."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None          # cumulative average over this one pass
    model.train()
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.eval()


def unit_variance_init(model: nn.Module, example_inputs: Sequence[torch.Tensor],
                       only: Sequence[str] = ()) -> None:
    """LSUV-style (Mishkin & Matas 2016) in one pass: as the forward reaches each conv (or each one named in
    `only`), scale its weight and bias so its output has unit std on the example, and pass the scaled output
    on. A conv applied several times in one pass (a recurrent block) is scaled on its first use only."""
    seen: set[int] = set()
    chosen = {id(model.get_submodule(name)) for name in only}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if id(module) in seen or (chosen and id(module) not in chosen):
            return None
        spread = float(out.std())
        if spread < 1e-6:      # e.g. a recurrent conv on the all-zero first state: scale it on a later use
            return None
        seen.add(id(module))
        factor = 1.0 / spread
        module.weight.mul_(factor)
        if module.bias is not None:
            module.bias.mul_(factor)
        return out * factor

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.eval()
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class OutputInit:
    """Random init that behaves like a trained net on photos: BatchNorm statistics measured on them, optionally
    every conv scaled to unit output std (nets with no normalisation), then the last layer scaled so the
    output has a realistic mean and spread. Applied only when no weights are given."""

    layer: str            # dotted name of the last conv
    mean: float
    std: float
    unit_variance: bool = False
    unit_variance_only: tuple[str, ...] = ()   # scale just these convs (keep a recurrence at default gain)

    def __call__(self, model: nn.Module, example_inputs: Sequence[torch.Tensor]) -> None:
        calibrate_batchnorm(model, example_inputs)
        if self.unit_variance or self.unit_variance_only:
            unit_variance_init(model, example_inputs, self.unit_variance_only)
        rescale_layer_output(model, model.get_submodule(self.layer), example_inputs, self.mean, self.std)
