"""What one export run is asked to do, and the one builder the CLI, the Python API and the tune ladder share,
so an option reachable from one door is reachable from all of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from edgeport.exporters.formats import DEFAULT_FORMATS
from edgeport.models.weights import OFFICIAL

if TYPE_CHECKING:
    import torch

    from edgeport.models.spec import ModelSpec

SettingValue = int | float | str | bool | tuple | list | None


@dataclass(frozen=True)
class ExportPlan:
    model: str
    formats: tuple[str, ...]
    out_root: Path
    recipes: tuple[str, ...] | None = None      # names (quantize/recipes.py); None: each format's defaults
    weights: Path | str | None = None           # a file, "official", or None (random init)
    seed: int = 0
    parity_seed: int = 0
    input_hw: tuple[int, int] | None = None
    config: Mapping[str, SettingValue] = field(default_factory=dict)
    dynamic_hw: bool = False
    options: Mapping[str, str | float | None] = field(default_factory=dict)   # tflite_route, converter_timeout, max_memory
    input_shapes: tuple[tuple[int, ...], ...] = ()   # a custom model's inputs (--input)
    spec: ModelSpec | None = None                     # a ready ModelSpec (Python API); overrides `model`
    calib_dir: Path | None = None                     # calibration photos; None: the bundled ones
    io: str = "image"                                 # "image": pixels compiled in where the contract is a picture
    photos_dir: Path | None = None                    # the team's validation photos, added to the parity samples


def build_plan(model: str | torch.nn.Module, *, inputs: Sequence[Sequence[int]] = (),
               to: Sequence[str] | None = None, out: str | Path = "artifacts", recipes: Sequence[str] | None = None,
               weights: str | Path | None = None, input_size: tuple[int, int] | None = None,
               config: Mapping[str, SettingValue] | None = None, seed: int = 0, dynamic_hw: bool = False,
               io: str = "image", photos: str | Path | None = None, calib: str | Path | None = None,
               tflite_route: str = "auto", converter_timeout: float | None = None,
               max_memory: int | None = None, name: str | None = None) -> ExportPlan:
    """A zoo name, a `file.py:factory`, or an nn.Module object (with `inputs` shapes for the last two)."""
    spec = None
    if not isinstance(model, str):
        from edgeport.models.custom import spec_from_module   # imports torch: only for a module object

        spec = spec_from_module(model, [tuple(s) for s in inputs], name)
    return ExportPlan(
        model=model if isinstance(model, str) else spec.name, formats=tuple(to or DEFAULT_FORMATS),
        out_root=Path(out), recipes=tuple(recipes) if recipes else None, seed=seed, input_hw=input_size,
        weights=(weights if str(weights) == OFFICIAL else Path(weights)) if weights else None,
        config=dict(config or {}), dynamic_hw=dynamic_hw, io=io, spec=spec,
        photos_dir=Path(photos) if photos else None, calib_dir=Path(calib) if calib else None,
        options={"tflite_route": tflite_route, "converter_timeout": converter_timeout, "max_memory": max_memory},
        input_shapes=tuple(tuple(s) for s in inputs))
