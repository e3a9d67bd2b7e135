"""The parity gate: run an artifact in its runtime on the parity samples, compare with PyTorch, judge.

`edgeport check` and the pytest entry (parity_tests/test_artifacts.py) both call check_artifact().
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.exporters.formats import open_runtime
from edgeport.models.errors import ModelError
from edgeport.models.spec import ParityGate, ParityInput, TaskMetric
from edgeport.parity_tests.manifest import Manifest, ManifestError, read_manifest
from edgeport.parity_tests.metrics import OutputMetrics, compare, compare_pixels
from edgeport.parity_tests.reference import rebuild_reference, torch_outputs
from edgeport.parity_tests.report import ParityReport, SampleResult, judge
from edgeport.runtimes.artifact import ArtifactRecord, sha256_file
from edgeport.runtimes.base import PARITY_THREADS, RuntimeUnavailable

if TYPE_CHECKING:
    from edgeport.runtimes.base import Runtime

Outputs = list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class Evaluation:
    """A judged report, and the runtime's own outputs (to compare two artifacts of one format)."""
    report: ParityReport
    outputs: Outputs = field(default_factory=list)


def _open(record: ArtifactRecord, artifact_dir: Path) -> Runtime:
    return open_runtime(record, artifact_dir, PARITY_THREADS)


def evaluate(record: ArtifactRecord, artifact_dir: Path, inputs: Sequence[ParityInput], references: Outputs,
             gate: ParityGate, seed: int, task_metric: TaskMetric | None = None) -> Evaluation:
    """Every parity input through the artifact's runtime, compared with PyTorch's outputs and judged."""
    try:
        runtime = _open(record, artifact_dir)
    except RuntimeUnavailable as exc:
        return Evaluation(ParityReport("error", f"{record.format} runtime", gate, message=str(exc), seed=seed))
    except Exception as exc:  # the runtime refused to load the file: this artifact's error, not the run's
        return Evaluation(ParityReport("error", f"{record.format} runtime", gate, seed=seed,
                                       message=f"could not load the artifact: {type(exc).__name__}: {str(exc)[:250]}"))
    results: list[SampleResult] = []
    task: list[tuple[str, dict]] = []
    outputs: Outputs = []
    try:
        for sample, ref in zip(inputs, references):
            got = runtime.run(sample.arrays)
            outputs.append(got)
            results += [SampleResult(sample.label, name, compared(record, name, ref[name], got[name])) for name in ref]
            if task_metric is not None:
                task.append((sample.label, task_metric(ref, got)))
    except Exception as exc:  # a runtime crash is reported as this artifact's error, not raised past it
        first = str(exc).splitlines()[0] if str(exc) else ""
        return Evaluation(ParityReport("error", runtime.engine, gate, tuple(results),
                                       f"{type(exc).__name__}: {first}"[:300], seed), outputs)
    status, message = judge(results, gate)
    return Evaluation(ParityReport(status, runtime.engine, gate, tuple(results), message, seed, tuple(task)), outputs)


def compared(record: ArtifactRecord, name: str, reference: np.ndarray, actual: np.ndarray) -> OutputMetrics:
    """An image output is judged as the 8-bit picture the app gets; a tensor output on its float values."""
    binding = next((b for b in record.outputs if b.name == name), None)
    if binding is not None and binding.pixels is not None:
        return compare_pixels(reference, actual, binding.pixels)
    return compare(reference, actual)


def versus_outputs(references: Sequence[Mapping[str, np.ndarray]], actual: Sequence[Mapping[str, np.ndarray]]) -> float:
    """Worst PSNR (dB) of `actual` against `references`, over samples and outputs; NaN anywhere gives -inf."""
    worst = math.inf
    for ref, got in zip(references, actual):
        for name in ref:
            m = compare(ref[name], got[name])
            worst = min(worst, m.psnr_db if m.finite else -math.inf)
    return worst


# ---- re-checking artifacts that are already on disk ----

@dataclass(frozen=True)
class ArtifactCheck:
    path: Path
    model: str
    format: str
    recipe: str
    route: str
    bytes: int
    report: ParityReport
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "model": self.model, "format": self.format, "recipe": self.recipe,
                "route": self.route, "bytes": self.bytes, "source": self.source, "parity": self.report.to_dict()}


@dataclass(frozen=True)
class Reference:
    inputs: tuple[ParityInput, ...]
    outputs: Outputs
    task_metric: TaskMetric | None


@dataclass
class ReferenceCache:
    """PyTorch outputs shared by the artifacts of one model, source, input shape and rewrite."""
    entries: dict[str, Reference | str] = field(default_factory=dict)   # a string: why it cannot be rebuilt

    def get(self, manifest: Manifest) -> Reference | str:
        import json

        rewrite = manifest.recipe.name if manifest.recipe.rewrites_module else None
        key = json.dumps([manifest.source.to_dict(), [c.shape for c in manifest.inputs], manifest.parity.seed,
                          rewrite, manifest.photos.to_dict() if manifest.photos else None], sort_keys=True)
        if key not in self.entries:
            try:
                rebuilt = rebuild_reference(manifest)
            except ModelError as exc:
                self.entries[key] = str(exc)
                return self.entries[key]
            outputs = torch_outputs(rebuilt.module, rebuilt.inputs, [c.name for c in manifest.inputs],
                                    [c.name for c in manifest.outputs])
            self.entries[key] = Reference(rebuilt.inputs, outputs, rebuilt.spec.task_metric)
        return self.entries[key]


def verify_files(record: ArtifactRecord, artifact_dir: Path) -> str:
    """'' when every file is present and unchanged, else what is wrong."""
    for f in record.files:
        path = artifact_dir / f.path
        if not path.is_file():
            return f"artifact file missing: {f.path}"
        if path.stat().st_size != f.bytes or sha256_file(path) != f.sha256:
            return f"artifact file changed since export (sha256 differs): {f.path}"
    return ""


CHECK_FIGURE = "check-parity.png"


def check_artifact(manifest_path: Path, cache: ReferenceCache | None = None, figure: bool = False) -> ArtifactCheck:
    """Rebuild the PyTorch reference from the manifest's source and re-run parity in the artifact's runtime;
    figure=True also draws the worst sample (CHECK_FIGURE in the artifact folder)."""
    artifact_dir = Path(manifest_path).parent
    try:
        manifest = read_manifest(manifest_path)
    except ManifestError as exc:
        return ArtifactCheck(artifact_dir, "?", "?", "?", "", 0,
                             ParityReport("error", "-", ParityGate(math.inf), message=str(exc)))
    record, gate, seed = manifest.artifact, manifest.parity.gate, manifest.parity.seed

    def checked(report: ParityReport) -> ArtifactCheck:
        return ArtifactCheck(artifact_dir, manifest.model.name, record.format, manifest.recipe.name, record.route,
                             record.total_bytes, report, manifest.source.description)
    problem = verify_files(record, artifact_dir)
    if problem:
        return checked(ParityReport("error", f"{record.format} runtime", gate, message=problem, seed=seed))
    reference = (cache or ReferenceCache()).get(manifest)
    if isinstance(reference, str):
        return checked(ParityReport("error", "PyTorch reference", gate, message=reference, seed=seed))
    evaluation = evaluate(record, artifact_dir, reference.inputs, reference.outputs, gate, seed, reference.task_metric)
    if figure:
        from edgeport.parity_tests.figures import grid_for

        grid_for(artifact_dir / CHECK_FIGURE, f"check {manifest.model.name} {record.format} {manifest.recipe.name}",
                 evaluation.report, reference.inputs, reference.outputs, evaluation.outputs, manifest.inputs,
                 manifest.outputs)
    return checked(evaluation.report)
