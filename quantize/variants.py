"""Module recipes: the rewritten PyTorch model a prune<N> or sparse<N> export starts from."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from edgeport.quantize.prune import prune_channels
from edgeport.quantize.recipes import Recipe
from edgeport.quantize.reconstruct import METHOD, activation_keep, refit_convs
from edgeport.quantize.recover import distil

# Same threshold as the Core ML compression (quantize.coreml_recipes): tiny weights stay dense.
SPARSE_MIN_ELEMENTS = 2048


@dataclass(frozen=True)
class ModuleVariant:
    module: nn.Module
    details: dict[str, Any] = field(default_factory=dict)
    warning: str = ""


def zero_smallest_weights(module: nn.Module, percent: float) -> tuple[nn.Module, dict[str, Any]]:
    """A copy where each conv/linear weight (of at least SPARSE_MIN_ELEMENTS) has its `percent` % smallest
    magnitudes set to zero: unstructured sparsity, which only a sparse weight format turns into bytes saved."""
    sparse = copy.deepcopy(module).eval()
    zeroed = total = layers = 0
    with torch.no_grad():
        for layer in sparse.modules():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)) or layer.weight.numel() < SPARSE_MIN_ELEMENTS:
                continue
            w = layer.weight
            k = int(round(w.numel() * percent / 100))
            if k:
                threshold = w.abs().flatten().kthvalue(k).values
                w.masked_fill_(w.abs() <= threshold, 0.0)
            zeroed += int((w == 0).sum())
            total += w.numel()
            layers += 1
    return sparse, {"method": "unstructured magnitude pruning per layer (no fine-tuning)",
                    "layers": layers, "weights_zeroed": zeroed, "weights_in_those_layers": total,
                    "sparsity": round(zeroed / total, 4) if total else 0.0, "min_elements": SPARSE_MIN_ELEMENTS}


def recovered_variant(teacher: nn.Module, example_inputs: Sequence[torch.Tensor], macs_percent: float,
                      training: Sequence[tuple], report: Callable[[str], None] = lambda _: None) -> ModuleVariant:
    """prune<N>+recover: channels chosen from the activations on the training batches, each conv refit by least
    squares, then distilled from the unpruned model."""
    import time

    started = time.perf_counter()
    result = prune_channels(teacher, example_inputs, macs_percent, activation_keep(training), METHOD)
    report(f"pruned from the activations of {len(training)} photos in {time.perf_counter() - started:.0f} s")
    refit = refit_convs(teacher, result.module, result.kept_outputs, training, report)
    refit_seconds = time.perf_counter() - started
    recovery = distil(refit, teacher, list(training), report=report)
    details = {**result.to_dict(), "method": f"{METHOD}, then distillation from the unpruned model",
               "prune_and_refit_seconds": round(refit_seconds, 1), "recovery": recovery.to_dict()}
    return ModuleVariant(recovery.module, details, result.shortfall)


def module_for_recipe(recipe: Recipe, module: nn.Module, example_inputs: Sequence[torch.Tensor]) -> ModuleVariant:
    if recipe.prune_percent:
        from edgeport.quantize.prune import prune_channels

        result = prune_channels(module, example_inputs, recipe.prune_percent)
        return ModuleVariant(result.module, result.to_dict(), result.shortfall)
    if recipe.sparsity_percent:
        sparse, details = zero_smallest_weights(module, recipe.sparsity_percent)
        return ModuleVariant(sparse, details)
    return ModuleVariant(module)
