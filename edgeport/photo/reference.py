"""The PyTorch model in place of an artifact's runtime: the same pipeline code run on it is the reference a
pipeline's parity is measured against (the app's final picture, not one tensor)."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Mapping

import numpy as np

from edgeport.parity_tests.manifest import Manifest
from edgeport.parity_tests.reference import rebuild_reference
from edgeport.photo.artifact import LoadedArtifact

if TYPE_CHECKING:
    from torch import nn

REFERENCE_ENGINE = "PyTorch (eager, fp32: the reference)"


class PyTorchRuntime:
    """Contract-named NCHW inputs -> contract-named outputs, as every artifact runtime answers."""

    engine = REFERENCE_ENGINE

    def __init__(self, module: nn.Module, manifest: Manifest) -> None:
        self.module, self.manifest = module, manifest

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():   # copies: a forward may write into its input
            out = self.module(*[torch.tensor(np.asarray(inputs[c.name])) for c in self.manifest.inputs])
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {c.name: o.float().numpy() for c, o in zip(self.manifest.outputs, outs)}


def with_pytorch(art: LoadedArtifact) -> LoadedArtifact:
    """The artifact's model rebuilt from its manifest (weights, config; a pruned artifact's pruned model),
    answering for its runtime. An int8 artifact's reference is the float model it was made from."""
    return replace(art, runtime=PyTorchRuntime(rebuild_reference(art.manifest).module, art.manifest))
