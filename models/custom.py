"""Any nn.Module through the zoo's pipeline: a `file.py:factory` reference, or a module object (Python API).

A factory file is the user's own code and runs as such; checkpoints still load with weights_only=True.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from edgeport.models.checkpoint import load_state_dict_file
from edgeport.models.errors import ModelError
from edgeport.models.samples import fit_photo, parity_photos, random_input
from edgeport.models.spec import ModelMetadata, ModelSpec, ParityInput, Photo, TensorContract

REFERENCE = re.compile(r"^(?P<path>.+\.py):(?P<factory>[A-Za-z_][A-Za-z0-9_]*)$")


def is_custom_reference(name: str) -> bool:
    return bool(REFERENCE.match(name))


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ModelError(f"input shape must look like 1x3x256x256, not {text!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise ModelError(f"input shape dimensions must be positive, not {text!r}")
    return shape


def load_factory(reference: str) -> Callable[[], Any]:
    match = REFERENCE.match(reference)
    if not match:
        raise ModelError(f"custom model must be given as path/to/file.py:factory, not {reference!r}")
    path = Path(match["path"])
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    module_name = f"edgeport_custom_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    code = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = code
    try:
        spec.loader.exec_module(code)
    except Exception as exc:
        raise ModelError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(code, match["factory"], None)
    if not callable(factory):
        raise ModelError(f"{path} has no callable {match['factory']!r}")
    return factory


def _checked_factory(factory: Callable[[], Any], label: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        try:
            module = factory()
        except Exception as exc:
            raise ModelError(f"factory {label} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(module, nn.Module):
            raise ModelError(f"factory {label} returned a {type(module).__name__}, not a torch.nn.Module")
        return module
    return build


def generic_inputs(contracts: tuple[TensorContract, ...], seed: int,
                   photos: Sequence[Photo] | None = None) -> list[ParityInput]:
    """Photos into every 3-channel image input (random data elsewhere), then an all-random sample."""
    samples = []
    for i, (name, photo) in enumerate(photos or parity_photos()):
        arrays = {c.name: fit_photo(photo, c) if len(c.shape) == 4 and c.shape[1] == 3
                  else random_input(c, seed + 1 + i) for c in contracts}
        samples.append(ParityInput(f"photo:{name}", arrays))
    samples.append(ParityInput(f"random:seed={seed}", {c.name: random_input(c, seed) for c in contracts}))
    return samples


def custom_spec(build: Callable[[], nn.Module], name: str, label: str,
                input_shapes: Sequence[tuple[int, ...]], reference: str) -> ModelSpec:
    if not input_shapes:
        raise ModelError("a custom model needs its input shape: --input 1x3x256x256 (once per input)")
    names = ["image"] if len(input_shapes) == 1 else [f"input_{i}" for i in range(len(input_shapes))]
    inputs = tuple(TensorContract(n, tuple(s), color_order="RGB" if len(s) == 4 and s[1] == 3 else "n/a",
                                  layout="NCHW" if len(s) == 4 else "any",
                                  description="[0, 1]; photos where 3 channels, random otherwise")
                   for n, s in zip(names, input_shapes))
    module = build().eval()
    try:
        with torch.no_grad():
            out = module(*[torch.zeros(s) for s in input_shapes])
    except Exception as exc:
        shapes = ", ".join("x".join(map(str, s)) for s in input_shapes)
        raise ModelError(f"{label} rejects input {shapes}: {type(exc).__name__}: {str(exc)[:200]}") from None
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outs):
        raise ModelError(f"{label} must return a tensor or a tuple of tensors")
    outputs = tuple(TensorContract("output" if len(outs) == 1 else f"output_{i}", tuple(o.shape),
                                   value_range=(float("-inf"), float("inf")), color_order="n/a",
                                   layout="NCHW" if o.dim() == 4 else "any")
                    for i, o in enumerate(outs))
    return ModelSpec(name=name, summary=f"custom model {label}", factory=build, inputs=inputs, outputs=outputs,
                     load_weights=load_state_dict_file, make_inputs=generic_inputs, task="custom",
                     metadata=ModelMetadata(paper="-", upstream=label), reference=reference)


def spec_from_reference(reference: str, input_shapes: Sequence[tuple[int, ...]]) -> ModelSpec:
    factory = load_factory(reference)
    path, factory_name = reference.rsplit(":", 1)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{Path(path).stem}-{factory_name}")
    absolute = f"{Path(path).resolve()}:{factory_name}"
    return custom_spec(_checked_factory(factory, reference), name, reference, input_shapes, absolute)


def spec_from_module(module: nn.Module, input_shapes: Sequence[tuple[int, ...]], name: str | None = None) -> ModelSpec:
    """For the Python API: the module object itself is the model (weights as they are now)."""
    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got a {type(module).__name__}")
    label = name or type(module).__name__
    return custom_spec(lambda: module, re.sub(r"[^A-Za-z0-9_.-]", "-", label), f"module {label}", input_shapes,
                       f"{IN_MEMORY}{label}")


IN_MEMORY = "python:"
