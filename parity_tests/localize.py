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
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from edgeport.exporters.formats import get_format
from edgeport.parity_tests.metrics import compare
from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import Tensors
from edgeport.runtimes.json_numbers import db_for_json

if TYPE_CHECKING:
    from edgeport.parity_tests.report import ParityReport

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
                "psnr_db": db_for_json(self.psnr_db),
                "max_abs": self.max_abs if math.isfinite(self.max_abs) else None, "finite": self.finite}

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


def collapse(report: ParityReport) -> bool:
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


def tensor_errors(reference: Tensors, compressed: Tensors, axis: int) -> list[LayerError]:
    """Each tensor the two artifacts share (by name and shape), in the reference's graph order."""
    errors = []
    for name, ref in reference.items():
        got = compressed.get(name)
        if (got is None or got.value.shape != ref.value.shape or ref.value.size == 0
                or ref.value.dtype.kind != "f" or got.value.dtype.kind != "f"
                or not np.all(np.isfinite(ref.value))):    # a reference that is not a number judges nothing
            continue
        m = compare(ref.value, got.value)
        db = worst_channel_db(ref.value, got.value, axis) if m.finite else -math.inf
        errors.append(LayerError(name, got.op, db, m.max_abs, m.finite))
    return errors


def localize(fp32_record: ArtifactRecord, fp32_dir: Path, record: ArtifactRecord, artifact_dir: Path,
             inputs: Mapping[str, np.ndarray]) -> Localization:
    """Compare the two artifacts tensor by tensor on one input."""
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
    errors = tensor_errors(reference, compressed, fmt.channel_axis)
    first = next((e for e in errors if not e.finite or e.psnr_db < COLLAPSE_DB), None)
    worst = tuple(sorted(errors, key=lambda e: e.psnr_db)[:WORST_SHOWN])
    return Localization(engine, len(errors), first, worst)


@dataclass(frozen=True)
class UnitBlame:
    """How much error one unit (what the format's tooling can keep in higher precision) adds to what its
    inputs already carry, as a noise ratio (noise_ratio; psnr_db is its tensor's worst channel). Where the
    rewrite rounds activations, the tensor's consumers are named too: the rounding on an edge belongs to both
    ends (ONNX's QDQ quantizer and coremltools' prefix/suffix passes each insert a quantize pair; an fp16
    consumer casts a kept fp32 producer's output back to fp16), so both must stay at higher precision."""
    unit: str
    op: str
    tensor: str
    added: float
    psnr_db: float
    consumers: tuple[str, ...] = ()

    @property
    def units(self) -> tuple[str, ...]:
        return (self.unit, *self.consumers)

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "op": self.op, "tensor": self.tensor, "added_noise": float(f"{self.added:.3g}"),
                "psnr_db": db_for_json(self.psnr_db),
                **({"consumers": list(self.consumers)} if self.consumers else {})}


def _is_boundary(op: str) -> bool:
    """Ops a precision rewrite inserts (int8 quantize/dequantize, fp16 casts): never a unit to keep."""
    lowered = op.lower()
    return "quantize" in lowered or lowered in ("cast", "dequantize")


def _source(name: str, traced: Tensors) -> str:
    """The tensor `name` carries, past the quantize/dequantize/cast ops a rewrite put in front of it."""
    seen: set[str] = set()
    while name in traced and _is_boundary(traced[name].op) and traced[name].inputs and name not in seen:
        seen.add(name)
        name = traced[name].inputs[0]
    return name


def _consumers(traced: Tensors) -> dict[str, list[str]]:
    """tensor -> the units that read it (past quantize/dequantize/cast ops)."""
    readers: dict[str, list[str]] = {}
    for entry in traced.values():
        if _is_boundary(entry.op) or not entry.unit:
            continue
        for name in entry.inputs:
            source = _source(name, traced)
            if entry.unit not in readers.setdefault(source, []):
                readers[source].append(entry.unit)
    return readers


def noise_ratio(ref: np.ndarray, got: np.ndarray) -> float:
    """Noise energy over signal energy of the whole tensor: unlike a PSNR over a range, a ReLU or a reshape
    leaves it unchanged, so the change from an op's inputs to its output is what the op added."""
    if not np.all(np.isfinite(got)):
        return 1.0
    ref64 = ref.astype(np.float64)
    power = float(np.mean(ref64 ** 2))
    return float(np.mean((ref64 - got) ** 2)) / power if power > 0 else 0.0


def blame_units(reference: Tensors, compressed: Tensors, axis: int, edges: bool = True) -> list[UnitBlame]:
    """Every unit that computes a tensor both artifacts have, in graph order, with the error it adds: its
    tensor's noise ratio minus the largest among its inputs. Inputs the fp32 artifact lacks (quantize/
    dequantize, casts) are followed back to tensors it has. `edges`: the rewrite rounds activations (fp16
    compute, int8 activations), so a tensor's consumers are named with its producer; a weight-only rewrite
    names the producer alone."""
    errors = tensor_errors(reference, compressed, axis)
    db = {e.tensor: e.psnr_db for e in errors}
    noise = {e.tensor: noise_ratio(reference[e.tensor].value, compressed[e.tensor].value) for e in errors}
    resolved: dict[str, float] = {}

    def upstream(name: str, depth: int = 0) -> float:
        if name in noise:
            return noise[name]
        if name in resolved or depth > 32 or name not in compressed:
            return resolved.get(name, 0.0)
        resolved[name] = max((upstream(i, depth + 1) for i in compressed[name].inputs), default=0.0)
        return resolved[name]

    readers = _consumers(compressed) if edges else {}
    blame: dict[str, UnitBlame] = {}
    for name, added in noise.items():
        producer = _source(name, compressed)
        entry = compressed.get(producer)
        if entry is None or _is_boundary(entry.op) or not entry.unit:
            continue
        gain = added - max((upstream(i) for i in compressed[name].inputs), default=0.0)
        if entry.unit not in blame or gain > blame[entry.unit].added:
            blame[entry.unit] = UnitBlame(entry.unit, compressed[name].op, name, gain, db[name],
                                          tuple(u for u in readers.get(producer, ()) if u != entry.unit))
    return list(blame.values())


def by_blame(units: list[UnitBlame]) -> list[UnitBlame]:
    """The units that add error, largest first: where one layer breaks the gate."""
    return sorted((b for b in units if b.added > 0), key=lambda b: -b.added)


def concentrated(units: list[UnitBlame], share: float = 0.5) -> bool:
    """Whether one unit adds at least `share` of all the error added: a broken layer rather than error that
    accumulates (and grows) along the network, where keeping layers from the input first does better."""
    added = [b.added for b in units if b.added > 0]
    return bool(added) and max(added) >= share * sum(added)
