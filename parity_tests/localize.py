"""Where a compressed artifact goes wrong: compare its intermediate tensors with the fp32 artifact's.

Run when a recipe collapses (NaN, or under COLLAPSE_DB against PyTorch). Both artifacts come from the same
converter, so most intermediate tensors keep their names; each name the two share (with one shape) is
compared, in the fp32 graph's order, by the PSNR of its worst channel. The first tensor under the bound is
where the error starts; the worst ones are where it is largest. Each format reads its tensors in its own
runtime (its Format's read_tensors: onnxruntime with every tensor made a graph output, edgeport's MIL
evaluator, LiteRT with preserve_all_tensors and no delegate); a format without a reader says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from parity_tests.metrics import compare
from runtimes.artifact import ArtifactRecord

COLLAPSE_DB = 20.0
WORST_SHOWN = 5



@dataclass(frozen=True)
class LayerError:
    tensor: str
    op: str
    psnr_db: float
    max_abs: float
    finite: bool

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "op": self.op,
                "psnr_db": None if math.isinf(self.psnr_db) else round(self.psnr_db, 2),
                "max_abs": self.max_abs, "finite": self.finite}

    def describe(self) -> str:
        return f"{self.tensor} ({self.op}): " + (f"{self.psnr_db:.1f} dB" if self.finite else "NaN/Inf")


@dataclass(frozen=True)
class Localization:
    engine: str
    compared: int
    first_bad: LayerError | None
    worst: tuple[LayerError, ...]
    note: str = ""

    @property
    def summary(self) -> str:
        if self.note:
            return f"error localisation: {self.note}"
        if not self.compared:
            return "error localisation: no intermediate tensor shares a name with the fp32 artifact"
        start = (f"error first passes {COLLAPSE_DB:g} dB at {self.first_bad.describe()}" if self.first_bad
                 else f"no intermediate tensor is under {COLLAPSE_DB:g} dB")
        return f"{start}; largest: " + ", ".join(e.describe() for e in self.worst) + f" ({self.engine})"

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "compared_tensors": self.compared, "collapse_db": COLLAPSE_DB,
                "first_bad": self.first_bad.to_dict() if self.first_bad else None,
                "worst": [e.to_dict() for e in self.worst], "note": self.note, "summary": self.summary}


def collapse(report: Any) -> bool:
    """NaN/Inf anywhere, or a worst sample under COLLAPSE_DB."""
    if report.status != "fail":
        return False
    return any(not s.metrics.finite or s.metrics.psnr_db < COLLAPSE_DB for s in report.samples)


def worst_channel_db(ref: np.ndarray, got: np.ndarray, axis: int) -> float:
    """PSNR of the worst channel, each over its own range: one large channel sets a per-tensor int8 scale that
    rounds the small ones to zero, which a PSNR over the whole tensor would hide."""
    whole = compare(ref, got).psnr_db
    if ref.ndim != 4:
        return whole
    ref_c, got_c = np.moveaxis(ref, axis, 0), np.moveaxis(got, axis, 0)
    worst = whole
    for r, g in zip(ref_c, got_c):
        span = float(r.max() - r.min())
        if span > 0:
            mse = float(np.mean((r.astype(np.float64) - g) ** 2))
            worst = min(worst, 10 * math.log10(span ** 2 / mse) if mse > 0 else math.inf)
    return worst


def localize(fp32_record: ArtifactRecord, fp32_dir: Path, record: ArtifactRecord, artifact_dir: Path,
             inputs: Mapping[str, np.ndarray]) -> Localization:
    """Compare the two artifacts tensor by tensor on one input."""
    from exporters.formats import get_format

    fmt = get_format(record.format)
    engine = fmt.tensors_engine or fmt.label
    if fmt.read_tensors is None:
        return Localization(engine, 0, None, (), note=f"reading intermediate tensors is not implemented for "
                                                      f"{fmt.label}")
    if fp32_record.route != record.route:
        return Localization(engine, 0, None, (), note=f"the fp32 artifact came from {fp32_record.route} and this one "
                                                      f"from {record.route}: their tensors do not share names")
    try:
        reference = fmt.read_tensors(fp32_record, fp32_dir, inputs)
        compressed = fmt.read_tensors(record, artifact_dir, inputs)
    except Exception as exc:  # localisation explains a failure; it must never hide the failure itself
        return Localization(engine, 0, None, (), note=f"could not read intermediate tensors: {type(exc).__name__}: "
                                                      f"{str(exc)[:200]}")
    errors = []
    axis = fmt.channel_axis
    for name, (op, ref) in reference.items():
        if name not in compressed or compressed[name][1].shape != ref.shape or ref.size == 0:
            continue
        got = compressed[name][1]
        m = compare(ref, got)
        db = worst_channel_db(ref, got, axis) if m.finite else -math.inf
        errors.append(LayerError(name, compressed[name][0], db, m.max_abs, m.finite))
    first = next((e for e in errors if not e.finite or e.psnr_db < COLLAPSE_DB), None)
    worst = tuple(sorted(errors, key=lambda e: e.psnr_db)[:WORST_SHOWN])
    return Localization(engine, len(errors), first, worst)
