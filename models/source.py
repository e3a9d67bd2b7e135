"""Where a model's weights came from, recorded so any later step can rebuild the same module.

Importing this loads no torch: a manifest reader in a runtime-only process reads ModelSource too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from edgeport.models.errors import CheckpointError, ModelError
from edgeport.models.spec import ModelSpec, TensorContract, is_noise_sample
from edgeport.models.weights import OFFICIAL
from edgeport.runtimes.artifact import sha256_file

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSource:
    model: str
    config: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    weights_sha256: str | None = None
    seed: int = 0
    origin: str = ""                                     # e.g. "Real-ESRGAN v0.2.5.0 ..., downloaded from ..."
    companions: Mapping[str, str] = field(default_factory=dict)   # files read beside `weights`: path -> sha256

    @property
    def description(self) -> str:
        if self.weights:
            origin = f"; {self.origin}" if self.origin else ""
            return f"weights {self.weights} (sha256 {self.weights_sha256[:12]}...{origin})"
        return f"random init, seed {self.seed} (no weights given: outputs are not meaningful images)"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "config": dict(self.config), "weights": self.weights,
                "weights_sha256": self.weights_sha256, "seed": self.seed, "origin": self.origin,
                "companions": dict(self.companions), "description": self.description}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSource":
        return cls(model=d["model"], config=dict(d.get("config") or {}), weights=d.get("weights"),
                   weights_sha256=d.get("weights_sha256"), seed=int(d.get("seed", 0)), origin=d.get("origin") or "",
                   companions=dict(d.get("companions") or {}))

    def files(self) -> dict[str, str]:
        """Every weights file this source reads, with the sha256 it had at export."""
        main = {self.weights: self.weights_sha256} if self.weights and self.weights_sha256 else {}
        return {**main, **self.companions}


def source_for(spec: ModelSpec, config: Mapping[str, Any], weights: "Path | str | None", seed: int) -> ModelSource:
    """`weights` is a file, "official" (the spec's release, resolved and verified), or None (random init)."""
    model = spec.reference or spec.name
    if weights is None:
        return ModelSource(model, dict(config), seed=seed)

    if str(weights) == OFFICIAL:
        from edgeport.models.official import resolve_official

        found = resolve_official(spec)
        return ModelSource(model, dict(config), str(found.path.resolve()), found.sha256, seed, found.origin,
                           dict(found.companions))
    weights = Path(weights)
    if not weights.is_file():
        raise CheckpointError(f"weights file not found: {weights}")
    companions = {}
    if weights.suffix in (".param", ".bin"):
        from edgeport.models.ncnn_files import ncnn_pair

        companions = {str(p.resolve()): sha256_file(p) for p in ncnn_pair(weights) if p.resolve() != weights.resolve()}
    return ModelSource(model, dict(config), str(weights.resolve()), sha256_file(weights), seed, companions=companions)


def instantiate(spec: ModelSpec, source: ModelSource, contracts: tuple[TensorContract, ...] | None = None) -> nn.Module:
    """Build the module in eval mode: seeded init, then the checkpoint when there is one. Without one, the
    spec's random_init calibrates on the sample photos at the contracts' size, on one thread (so the same
    seed, settings and input size always rebuild the same weights, on any number of cores)."""
    import numpy as np
    import torch

    torch.manual_seed(source.seed)
    module = spec.build(**source.config)
    if source.weights:
        for name, digest in source.files().items():
            if not Path(name).is_file():
                raise CheckpointError(f"weights file not found: {name}")
            if sha256_file(Path(name)) != digest:
                raise CheckpointError(f"weights file {name} changed since export (sha256 differs): re-export")
        spec.load_weights(module, Path(source.weights))
    elif spec.random_init is not None:
        contracts = contracts or resolve_inputs(spec, None, source.config)
        photos = [p for p in spec.make_inputs(contracts, 0) if not is_noise_sample(p.label)]
        batch = [torch.from_numpy(np.concatenate([p.arrays[c.name] for p in photos])) for c in contracts]
        from edgeport.models.threads import one_torch_thread

        with one_torch_thread():     # the same weights whatever the core count
            spec.random_init(module, batch)
    return module.eval()


def resolve_inputs(spec: ModelSpec, input_hw: tuple[int, int] | None,
                   config: Mapping[str, Any] | None = None) -> tuple[TensorContract, ...]:
    """The input contracts at the requested size, refused with the model's own rule when it cannot take it."""
    contracts = spec.inputs if input_hw is None else tuple(c.with_hw(*input_hw) for c in spec.inputs)
    if spec.size_rule is not None:
        _, _, h, w = contracts[0].shape
        problem = spec.size_rule({**spec.config, **(config or {})}, h, w)
        if problem:
            raise ModelError(f"{spec.name}: {problem} (use --input-size)")
    return contracts
