"""The Python doors to the same pipeline and gate the CLI uses."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from edgeport.pipeline import ExportPlan, ExportSummary, run_export
from edgeport.progress import Progress


def export(model: Any, *, inputs: Sequence[Sequence[int]] = (), to: Iterable[str] | None = None,
           out: str | Path = "artifacts", recipes: Sequence[str] | None = None, weights: str | Path | None = None,
           input_size: tuple[int, int] | None = None, config: Mapping[str, Any] | None = None, seed: int = 0,
           dynamic_hw: bool = False, tflite_route: str = "auto", name: str | None = None,
           calib: str | Path | None = None, converter_timeout: float | None = None,
           progress: bool = False) -> ExportSummary:
    """Export a zoo model (name), a `file.py:factory`, or an nn.Module object (give `inputs` shapes for the
    last two) to each format and recipe (fp32, fp16, w8, w8a8, palettize4, prune50, ...), check parity in each
    runtime, and write artifacts and manifests under `out`."""
    from exporters.formats import DEFAULT_FORMATS
    from models.weights import OFFICIAL

    spec = None
    if not isinstance(model, str):
        from models.custom import spec_from_module

        spec = spec_from_module(model, [tuple(s) for s in inputs], name)
    plan = ExportPlan(model=model if isinstance(model, str) else spec.name, formats=tuple(to or DEFAULT_FORMATS), out_root=Path(out),
                      recipes=tuple(recipes) if recipes else None, calib_dir=Path(calib) if calib else None,
                      weights=(weights if str(weights) == OFFICIAL else Path(weights)) if weights else None, seed=seed, input_hw=input_size,
                      config=dict(config or {}), dynamic_hw=dynamic_hw, options={"tflite_route": tflite_route, "converter_timeout": converter_timeout},
                      input_shapes=tuple(tuple(s) for s in inputs), spec=spec)
    return run_export(plan, Progress(enabled=progress))


def check(path: str | Path = "artifacts") -> list:
    """Re-run every parity gate under `path`; returns one ArtifactCheck per artifact."""
    from parity_tests.gate import ReferenceCache, check_artifact
    from parity_tests.manifest import find_manifests

    cache = ReferenceCache()
    return [check_artifact(m, cache) for m in find_manifests(Path(path))]
