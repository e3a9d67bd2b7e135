"""The parity gate: compare an artifact in its runtime with PyTorch, and judge it against the model's bounds.

`edgeport check` and the pytest entry (parity_tests/test_artifacts.py) both call check_artifact().
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from exporters.base import ArtifactRecord, sha256_file
from models.spec import ParityGate, ParityInput, TaskMetric
from parity_tests.metrics import OutputMetrics, compare, format_db
from parity_tests.runtimes import RuntimeUnavailable, open_runtime

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SampleResult:
    sample: str
    output: str
    metrics: OutputMetrics

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample, "output": self.output, **self.metrics.to_dict()}


@dataclass(frozen=True)
class ParityReport:
    """status: pass, fail (a bound missed) or error (the runtime could not run it: never a pass)."""

    status: str
    engine: str
    gate: ParityGate
    samples: tuple[SampleResult, ...] = ()
    message: str = ""
    seed: int = 0
    task: tuple[tuple[str, dict], ...] = ()   # (sample, {metric: value}) where the model defines a task metric

    @property
    def task_worst(self) -> dict[str, float]:
        """Each task score at its worst sample (every score here is better when higher)."""
        worst: dict[str, float] = {}
        for _, scores in self.task:
            for key, value in scores.items():
                worst[key] = min(worst.get(key, value), value)
        return worst

    @property
    def worst_psnr_db(self) -> float | None:
        return min((s.metrics.psnr_db for s in self.samples), default=None)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst_psnr_db
        return {
            "status": self.status, "engine": self.engine, "gate": self.gate.to_dict(), "message": self.message,
            "seed": self.seed,
            "worst_psnr_db": None if worst is None or math.isinf(worst) else round(worst, 3),
            "worst_bit_exact": worst is not None and math.isinf(worst) and worst > 0,
            "worst_max_abs": max((s.metrics.max_abs for s in self.samples), default=None),
            "min_cosine": min((s.metrics.cosine for s in self.samples), default=None),
            "samples": [s.to_dict() for s in self.samples],
            "task": {label: scores for label, scores in self.task}, "task_worst": self.task_worst,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ParityReport":
        samples = tuple(SampleResult(s["sample"], s["output"], OutputMetrics.from_dict(s)) for s in d["samples"])
        return cls(d["status"], d["engine"], ParityGate.from_dict(d["gate"]), samples, d.get("message", ""),
                   int(d.get("seed", 0)), tuple((d.get("task") or {}).items()))


SATURATION_WARNING = 0.25


def judge(samples: Sequence[SampleResult], gate: ParityGate) -> tuple[str, str]:
    """Status and the reason; a pass may carry a warning that the evidence is weak."""
    for s in samples:
        m = s.metrics
        if not m.finite:
            return "fail", f"{s.sample}/{s.output}: runtime output has NaN or Inf"
        if m.psnr_db < gate.min_psnr_db:
            return "fail", f"{s.sample}/{s.output}: {format_db(m.psnr_db)} dB < {gate.min_psnr_db:g} dB"
        if gate.min_cosine is not None and m.cosine < gate.min_cosine:
            return "fail", f"{s.sample}/{s.output}: cosine {m.cosine:.6f} < {gate.min_cosine}"
    worst = max(samples, key=lambda s: s.metrics.reference_saturation, default=None)
    if worst is not None and worst.metrics.reference_saturation > SATURATION_WARNING:
        return "pass", (f"weak evidence: {worst.metrics.reference_saturation:.0%} of the PyTorch output for "
                        f"{worst.sample} sits at its min/max (clamped), so parity covers little of the signal")
    return "pass", ""


def evaluate(record: ArtifactRecord, artifact_dir: Path, inputs: Sequence[ParityInput],
             references: Sequence[Mapping[str, np.ndarray]], gate: ParityGate, seed: int,
             task_metric: TaskMetric | None = None, outputs_sink: list | None = None) -> ParityReport:
    """Run every parity input through the artifact's runtime and compare with PyTorch's outputs (the
    runtime's outputs are appended to outputs_sink, for comparing two artifacts of one format)."""
    try:
        runtime = open_runtime(record, artifact_dir)
    except RuntimeUnavailable as exc:
        return ParityReport("error", f"{record.format} runtime", gate, message=str(exc), seed=seed)
    except Exception as exc:  # the runtime refused to load the file: this artifact's error, not the run's
        return ParityReport("error", f"{record.format} runtime", gate, seed=seed,
                            message=f"could not load the artifact: {type(exc).__name__}: {str(exc)[:250]}")
    results: list[SampleResult] = []
    task: list[tuple[str, dict]] = []
    try:
        for sample, ref in zip(inputs, references):
            got = runtime.run(sample.arrays)
            if outputs_sink is not None:
                outputs_sink.append(got)
            results += [SampleResult(sample.label, name, compare(ref[name], got[name])) for name in ref]
            if task_metric is not None:
                task.append((sample.label, task_metric(ref, got)))
    except Exception as exc:  # a runtime crash is reported as this artifact's error, not raised past it
        return ParityReport("error", runtime.engine, gate, tuple(results),
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300], seed)
    status, message = judge(results, gate)
    return ParityReport(status, runtime.engine, gate, tuple(results), message, seed, tuple(task))


def versus_outputs(references: Sequence[Mapping[str, np.ndarray]], actual: Sequence[Mapping[str, np.ndarray]]) -> float:
    """Worst PSNR (dB) of `actual` against `references`, over samples and outputs; NaN anywhere gives -inf."""
    worst = math.inf
    for ref, got in zip(references, actual):
        for name in ref:
            m = compare(ref[name], got[name])
            worst = min(worst, m.psnr_db if m.finite else -math.inf)
    return worst


def torch_references(module: Any, inputs: Sequence[ParityInput], input_names: Sequence[str],
                     output_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    import torch

    refs = []
    with torch.no_grad():
        for sample in inputs:
            out = module(*[torch.from_numpy(sample.arrays[n]) for n in input_names])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            refs.append({n: o.detach().float().numpy() for n, o in zip(output_names, outs)})
    return refs


# ---- re-checking artifacts that are already on disk ----

@dataclass
class ArtifactCheck:
    path: Path
    model: str
    format: str
    precision: str
    route: str
    bytes: int
    report: ParityReport
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "model": self.model, "format": self.format, "precision": self.precision,
                "route": self.route, "bytes": self.bytes, "source": self.source, "parity": self.report.to_dict()}


@dataclass(frozen=True)
class Reference:
    inputs: list[ParityInput]
    outputs: list[dict[str, np.ndarray]]
    task_metric: TaskMetric | None


@dataclass
class ReferenceCache:
    """PyTorch outputs shared by the artifacts of one model, source and input shape."""

    entries: dict[str, Reference] = field(default_factory=dict)


def find_manifests(root: Path) -> list[Path]:
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root / MANIFEST]
    return sorted(p for p in root.rglob(MANIFEST) if not any(part.startswith(".") for part in p.parts[-3:-1]))


def verify_files(record: ArtifactRecord, artifact_dir: Path) -> str:
    """'' when every file is present and unchanged, else what is wrong."""
    for f in record.files:
        path = artifact_dir / f.path
        if not path.is_file():
            return f"artifact file missing: {f.path}"
        if path.stat().st_size != f.bytes or sha256_file(path) != f.sha256:
            return f"artifact file changed since export (sha256 differs): {f.path}"
    return ""


def check_artifact(manifest_path: Path, cache: ReferenceCache | None = None) -> ArtifactCheck:
    """Rebuild the PyTorch reference from the manifest's source and re-run parity in the artifact's runtime."""
    from models import ModelError, get_spec
    from models.source import ModelSource, instantiate
    from models.spec import TensorContract

    cache = cache or ReferenceCache()
    artifact_dir = Path(manifest_path).parent
    try:
        manifest = json.loads(Path(manifest_path).read_text())
        record = ArtifactRecord.from_dict(manifest["artifact"])
        gate = ParityGate.from_dict(manifest["parity"]["gate"])
        seed = int(manifest["parity"].get("seed", 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ArtifactCheck(artifact_dir, "?", "?", "?", "", 0,
                             ParityReport("error", "-", ParityGate(math.inf), message=f"unreadable manifest: {exc!r}"))
    recipe = manifest.get("recipe") or {}
    module_recipe = recipe["name"] if recipe.get("kind") == "module" else None   # prune<N>(+...) / sparse<N>
    check = ArtifactCheck(artifact_dir, manifest["model"]["name"], record.format, recipe.get("name", record.precision),
                          record.route, record.total_bytes,
                          ParityReport("error", f"{record.format} runtime", gate, seed=seed),
                          manifest["source"].get("description", ""))
    problem = verify_files(record, artifact_dir)
    if problem:
        check.report = ParityReport("error", check.report.engine, gate, message=problem, seed=seed)
        return check
    contracts = tuple(TensorContract(**{**c, "shape": tuple(c["shape"]),
                                        "value_range": tuple(math.inf if v is None else v for v in c["value_range"])})
                      for c in manifest["contract"]["inputs"])
    key = json.dumps([manifest["source"], [c["shape"] for c in manifest["contract"]["inputs"]], seed, module_recipe],
                     sort_keys=True)
    if key not in cache.entries:
        try:
            source = ModelSource.from_dict(manifest["source"])
            spec = get_spec(source.model, [c.shape for c in contracts])
            module = instantiate(spec, source, contracts)
        except ModelError as exc:
            check.report = ParityReport("error", "PyTorch reference", gate, message=str(exc), seed=seed)
            return check
        inputs = spec.make_inputs(contracts, seed)
        if module_recipe:   # the reference is the rewritten model, rebuilt as the export built it
            import torch

            from quantize.recipes import parse_recipe
            from quantize.variants import module_for_recipe

            example = tuple(torch.from_numpy(inputs[0].arrays[c.name]) for c in contracts)
            module = module_for_recipe(parse_recipe(module_recipe), module, example).module
        refs = torch_references(module, inputs, [c.name for c in contracts],
                                [o["name"] for o in manifest["contract"]["outputs"]])
        cache.entries[key] = Reference(inputs, refs, spec.task_metric)
    ref = cache.entries[key]
    check.report = evaluate(record, artifact_dir, ref.inputs, ref.outputs, gate, seed, ref.task_metric)
    return check
