"""Any restoration checkpoint spandrel recognises, as a ModelSpec: architecture, hyper-parameters, scale and
input contract detected from the weights, so `edgeport export --weights 4x-Foo.pth` needs no model name.

spandrel (chaiNNer-org/spandrel) declares torchvision, and its package __init__ imports it through two
architectures (LaMa: transforms.functional.rotate and InterpolationMode; RestoreFormer: normalize). No
torchvision imports beside the CPU torch 2.13 wheel here, so spandrel is installed with --no-deps and
imported under `_torchvision_stand_in()`: placeholder modules serve exactly those three names while spandrel
imports, then leave sys.modules, so no other library ever sees a torchvision. The placeholders raise if
called, and checkpoints of those two architectures are refused before export.
"""
from __future__ import annotations

import contextlib
import copy
import re
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NoReturn

import torch
from torch import nn

from edgeport.models.checkpoint import load_strict, read_checkpoint
from edgeport.models.errors import CheckpointError, ModelError
from edgeport.models.samples import photo_inputs
from edgeport.models.spec import ModelMetadata, ModelSpec, TensorContract
from edgeport.runtimes.pixels import PixelEncoding

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor

    from edgeport.models.spec import SizeRule

PREFIX = "spandrel:"
NEEDS_TORCHVISION = ("LaMa", "RestoreFormer")
DEFAULT_SIDE = 64
# spandrel's core registry holds only permissively licensed architectures (its non-commercial ones live in
# spandrel_extra_arches, which edgeport does not load); a checkpoint's own terms are its publisher's.
LICENSE_TAG = "spandrel core (MIT); permissive-licence architectures only; weights: see the checkpoint's publisher"


class TorchvisionUnavailable(ModelError):
    pass


def is_spandrel_reference(name: str) -> bool:
    return name.startswith(PREFIX)


def _unavailable(name: str) -> Callable[..., NoReturn]:
    def call(*_: Any, **__: Any) -> NoReturn:
        raise TorchvisionUnavailable(f"torchvision.{name} is needed by this spandrel architecture, and no torchvision "
                                     "installs beside the torch 2.13 CPU wheel here")
    return call


class _InterpolationModeStandIn:
    def __getattr__(self, name: str) -> NoReturn:
        return _unavailable(f"transforms.functional.InterpolationMode.{name}")()


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    if any(n in sys.modules for n in names):
        yield
        return
    functional = types.ModuleType(names[2])
    functional.rotate = _unavailable("transforms.functional.rotate")
    functional.normalize = _unavailable("transforms.functional.normalize")
    functional.InterpolationMode = _InterpolationModeStandIn()
    transforms = types.ModuleType(names[1])
    transforms.functional = functional
    package = types.ModuleType(names[0])
    package.transforms = transforms
    sys.modules.update(zip(names, (package, transforms, functional)))
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)


def import_spandrel() -> types.ModuleType:
    import importlib.util

    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    if importlib.util.find_spec("spandrel") is None:
        raise ModelError("spandrel is not installed: run scripts/setup.sh (it installs spandrel --no-deps)")
    if importlib.util.find_spec("torchvision") is not None:
        import spandrel
        return spandrel
    with _torchvision_stand_in():
        import spandrel
    return spandrel


def detect(path: Path) -> ImageModelDescriptor:
    """spandrel's ImageModelDescriptor for a checkpoint read with weights_only (never spandrel's own loader)."""
    spandrel = import_spandrel()
    raw = read_checkpoint(path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a state dict")
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(spandrel.canonicalize_state_dict(raw))
    except spandrel.UnsupportedModelError:
        raise CheckpointError(f"spandrel {spandrel.__version__} does not recognise the architecture of {path}; "
                              "name a zoo model, or give --model FILE.py:FACTORY and --weights") from None
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"spandrel detected an architecture in {path} but could not load it: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    arch = descriptor.architecture.id
    if arch in NEEDS_TORCHVISION:
        raise CheckpointError(f"{path} is a {arch} model: spandrel runs it through torchvision, which does not "
                              "install beside torch 2.13 here; it cannot be exported")
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{path} is a {arch} {descriptor.purpose} model: only single-image models "
                              "(super-resolution, restoration) export through spandrel so far")
    return descriptor


def spandrel_spec(reference: str) -> ModelSpec:
    """The spec for `spandrel:/abs/path.pth`; rebuilt the same way from a manifest."""
    path = Path(reference[len(PREFIX):])
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    return _spec_from(detect(path), path)


def reference_for(path: Path) -> str:
    return f"{PREFIX}{Path(path).resolve()}"


def _size_rule(minimum: int, multiple: int, square: bool) -> SizeRule:
    def rule(_config: Mapping[str, Any], h: int, w: int) -> str | None:
        if h < minimum or w < minimum or h % multiple or w % multiple:
            return f"this checkpoint takes heights and widths that are multiples of {multiple}, at least {minimum}, not {h}x{w}"
        if square and h != w:
            return f"this checkpoint takes square inputs only, not {h}x{w}"
        return None
    return rule


def _default_side(minimum: int, multiple: int) -> int:
    side = max(DEFAULT_SIDE, minimum)
    return -(-side // multiple) * multiple


def architecture_record(descriptor: ImageModelDescriptor) -> dict[str, Any]:
    """What the manifest says about a detected checkpoint."""
    spandrel = import_spandrel()
    hyper = getattr(descriptor.model, "hyperparameters", None) or {}
    return {"detected_by": f"spandrel {spandrel.__version__}", "id": descriptor.architecture.id,
            "name": descriptor.architecture.name, "purpose": descriptor.purpose, "scale": descriptor.scale,
            "tags": list(descriptor.tags), "hyperparameters": {k: _plain(v) for k, v in hyper.items()},
            "license": LICENSE_TAG}


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None), list, tuple)) else repr(value)


def _spec_from(descriptor: ImageModelDescriptor, path: Path) -> ModelSpec:
    req, scale = descriptor.size_requirements, descriptor.scale
    side = _default_side(req.minimum, req.multiple_of)
    colour = {1: "GRAY", 3: "RGB"}.get(descriptor.input_channels)
    if colour is None or descriptor.output_channels not in (1, 3):
        raise CheckpointError(f"{path}: {descriptor.input_channels} input / {descriptor.output_channels} output "
                              "channels; only grayscale and RGB image models export through spandrel so far")
    image = TensorContract("image", (1, descriptor.input_channels, side, side), color_order=colour,
                           description=f"{colour} image, float in [0, 1]", pixels=PixelEncoding.unit(colour))
    out = TensorContract("output", (1, descriptor.output_channels, side * scale, side * scale),
                         color_order={1: "GRAY", 3: "RGB"}[descriptor.output_channels],
                         description=f"x{scale} {descriptor.purpose} output, clamped to [0, 1] as spandrel does",
                         pixels=PixelEncoding.unit({1: "GRAY", 3: "RGB"}[descriptor.output_channels]))
    record = architecture_record(descriptor)
    settings = ", ".join(f"{k}={v}" for k, v in record["hyperparameters"].items())
    arch = descriptor.architecture.id
    return ModelSpec(
        name=_safe_name(path.stem), summary=f"{arch} x{scale} {descriptor.purpose}, detected by spandrel ({settings})",
        factory=lambda: SpandrelImageModel.fresh(descriptor), inputs=(image,), outputs=(out,),
        load_weights=lambda module, _path: _load(module, descriptor, path), make_inputs=photo_inputs,
        metadata=ModelMetadata(paper="", upstream="https://github.com/chaiNNer-org/spandrel",
                               notes=f"architecture detected from the weights: {arch}"),
        task="super-resolution" if scale > 1 else "restoration",
        size_rule=_size_rule(req.minimum, req.multiple_of, req.square), reference=reference_for(path),
        architecture=record)


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-").lower() or "spandrel-model"


def _load(module: SpandrelImageModel, descriptor: ImageModelDescriptor, path: Path) -> None:
    load_strict(module.model, descriptor.model.state_dict(), source=str(path))


class SpandrelImageModel(nn.Module):
    """The architecture's forward as spandrel calls it (its call_fn), clamped to [0, 1] like spandrel's
    descriptor; spandrel's padding is replaced by the size rule, so an exported graph has no pad or crop."""
    def __init__(self, model: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model, self._call = model, call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(self.model, x).clamp(0.0, 1.0)

    @classmethod
    def fresh(cls, descriptor: ImageModelDescriptor) -> "SpandrelImageModel":
        """The detected architecture with its own initialisation; the weights load afterwards."""
        hyper = getattr(descriptor.model, "hyperparameters", None)
        model = type(descriptor.model)(**hyper) if hyper else copy.deepcopy(descriptor.model)
        return cls(model, descriptor._call_fn)   # spandrel keeps the call in a private field
