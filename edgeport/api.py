"""The Python doors to the same pipeline and gate the CLI uses: one plan builder (edgeport/export/plan.py)
serves both, so every export option the CLI takes is a keyword here."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from edgeport.export.isolation import run_export
from edgeport.export.plan import SettingValue, build_plan
from edgeport.export.results import ExportSummary
from edgeport.parity_tests.gate import ArtifactCheck, ReferenceCache, check_artifact
from edgeport.parity_tests.manifest import find_manifests
from edgeport.progress import Progress

if TYPE_CHECKING:
    import torch

    from edgeport.photo.run import PhotoRun


def export(model: str | torch.nn.Module, *, inputs: Sequence[Sequence[int]] = (), to: Iterable[str] | None = None,
           out: str | Path = "artifacts", recipes: Sequence[str] | None = None, weights: str | Path | None = None,
           input_size: tuple[int, int] | None = None, config: Mapping[str, SettingValue] | None = None,
           seed: int = 0, dynamic_hw: bool = False, io: str = "image", photos: str | Path | None = None,
           calib: str | Path | None = None, tflite_route: str = "auto", converter_timeout: float | None = None,
           max_memory: int | None = None, name: str | None = None, progress: bool = False,
           isolate: bool = True) -> ExportSummary:
    """Export a zoo model (name), a `file.py:factory`, or an nn.Module object (give `inputs` shapes for the
    last two) to each format and recipe (fp32, fp16, w8, w8a8, palettize4, prune50, ...), check parity in each
    runtime, and write artifacts and manifests under `out`. `io="tensor"` keeps float32 NCHW I/O; `photos`
    adds your validation photos to the parity samples (as `edgeport export --io/--photos`). Each row runs in a
    child process (a crashing converter fails its row alone) unless `isolate=False` or the module object cannot
    be pickled; `max_memory` (bytes) bounds that process."""
    plan = build_plan(model, inputs=inputs, to=tuple(to) if to else None, out=out, recipes=recipes, weights=weights,
                      input_size=input_size, config=config, seed=seed, dynamic_hw=dynamic_hw, io=io,
                      photos=photos, calib=calib, tflite_route=tflite_route, converter_timeout=converter_timeout,
                      max_memory=max_memory, name=name)
    return run_export(plan, Progress(enabled=progress), isolate)


def check(path: str | Path = "artifacts") -> list[ArtifactCheck]:
    """Re-run every parity gate under `path`; returns one ArtifactCheck per artifact."""
    cache = ReferenceCache()
    return [check_artifact(m, cache) for m in find_manifests(Path(path))]


def upscale_selection(artifact: str | Path, photo: str | Path, select: str, *, background: str = "keep",
                      feather: float = 0.0, out: str | Path = "edgeport-run", subject_model: str | Path | None = None,
                      threads: int = 2, overlap: int | None = None, margin: int | None = None) -> PhotoRun:
    """`edgeport run ARTIFACT PHOTO --select ...`: the model on the tiles touching the selection (rect:X,Y,W,H,
    polygon:..., mask:FILE, subject[:X,Y] with `subject_model`), the rest of the photo resized and kept, darkened
    (darken:0.6) or made white; returns the run, whose `outputs[0]` is the picture at the model's scale."""
    from edgeport.photo.artifact import load_artifact
    from edgeport.photo.compositing import Background
    from edgeport.photo.run import RunOptions
    from edgeport.photo.selection import Selection
    from edgeport.photo.upscale_selection import SelectionJob, upscale_photo

    job = SelectionJob(Selection.parse(select), Background.parse(background), feather)
    finder = load_artifact(Path(subject_model), threads) if subject_model is not None else None
    return upscale_photo(load_artifact(Path(artifact), threads), Path(photo),
                         RunOptions(Path(out), overlap, margin, threads=threads), job, finder)
