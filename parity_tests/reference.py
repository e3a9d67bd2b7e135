"""The PyTorch reference an artifact is judged against, rebuilt from its manifest.

One function serves check (reference outputs), bench (the eager baseline) and size (the largest layers), so
they cannot drift: the contracts come back whole (value ranges included), random init is recalibrated on the
same photos, and a pruned or sparsified artifact gets its rewritten model back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from edgeport.models import get_spec
from edgeport.models.source import instantiate
from edgeport.models.spec import ModelSpec, ParityInput
from edgeport.models.team_photos import parity_samples
from edgeport.parity_tests.manifest import Manifest

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class RebuiltReference:
    spec: ModelSpec
    module: nn.Module                 # in eval mode (on the meta device when not materialized)
    inputs: tuple[ParityInput, ...]   # the parity samples the export was judged on


def rebuild_reference(manifest: Manifest, materialize: bool = True) -> RebuiltReference:
    """Raises ModelError (or CheckpointError) when the model cannot be rebuilt here. materialize=False gives
    the unpruned architecture on the meta device: its structure, without weights or inputs."""
    import torch

    spec = get_spec(manifest.source.model, [c.shape for c in manifest.inputs])
    if not materialize:
        with torch.device("meta"):
            return RebuiltReference(spec, spec.build(**manifest.source.config).eval(), ())
    module = instantiate(spec, manifest.source, manifest.inputs)
    inputs = tuple(parity_samples(spec, manifest.inputs, manifest.parity.seed, manifest.photos))
    if manifest.recipe.rewrites_module:   # the reference is the rewritten model, rebuilt as the export built it
        from edgeport.quantize.recipes import parse_recipe
        from edgeport.quantize.variants import module_for_recipe

        example = tuple(torch.from_numpy(inputs[0].arrays[c.name]) for c in manifest.inputs)
        module = module_for_recipe(parse_recipe(manifest.recipe.name), module, example).module
    return RebuiltReference(spec, module, inputs)


def torch_outputs(module: nn.Module, inputs: Sequence[ParityInput], input_names: Sequence[str],
                  output_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    import torch

    refs = []
    with torch.no_grad():
        for sample in inputs:
            # copies: a forward that writes into its input (spandrel's RCAN does `x *= 255`) must not change
            # the samples every runtime is fed afterwards
            out = module(*[torch.tensor(sample.arrays[n]) for n in input_names])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            refs.append({n: o.detach().float().numpy() for n, o in zip(output_names, outs)})
    return refs
