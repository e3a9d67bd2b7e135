"""The model zoo: one spec per model, found by name."""
from __future__ import annotations

import difflib

from edgeport.models.errors import CheckpointError, ModelError
from edgeport.models.spec import ModelSpec

_FAMILIES = ("edgeport.models.realesrgan", "edgeport.models.dncnn", "edgeport.models.inpaint", "edgeport.models.deblur", "edgeport.models.segmenter", "edgeport.models.saliency", "edgeport.models.depth")


def all_specs() -> dict[str, ModelSpec]:
    """Every spec, keyed by name; each family module exposes a SPECS tuple."""
    import importlib

    specs: dict[str, ModelSpec] = {}
    for family in _FAMILIES:
        for spec in importlib.import_module(family).SPECS:
            if spec.name in specs:
                raise RuntimeError(f"model name {spec.name!r} is registered twice")
            specs[spec.name] = spec
    return specs


def get_spec(name: str, input_shapes: "list[tuple[int, ...]] | None" = None) -> ModelSpec:
    """A zoo model by name, or a custom `path/to/file.py:factory` (which needs its input shapes)."""
    from edgeport.models.custom import IN_MEMORY, is_custom_reference, spec_from_reference

    from edgeport.models.spandrel_models import is_spandrel_reference, spandrel_spec

    if is_spandrel_reference(name):
        return spandrel_spec(name)
    if is_custom_reference(name):
        return spec_from_reference(name, input_shapes or [])
    if name.startswith(IN_MEMORY):
        raise ModelError(f"{name[len(IN_MEMORY):]} was exported from an in-memory module: its PyTorch reference "
                         "cannot be rebuilt here; re-run the export from Python to re-check it")
    specs = all_specs()
    if name in specs:
        return specs[name]
    close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(specs))}"
    raise ModelError(f"unknown model {name!r}{hint} (`edgeport models` lists them)")


__all__ = ["CheckpointError", "ModelError", "ModelSpec", "all_specs", "get_spec"]
