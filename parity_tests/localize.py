"""Where a compressed artifact goes wrong: compare its intermediate tensors with the fp32 artifact's.

Run when a recipe collapses (NaN, or under COLLAPSE_DB against PyTorch). Both artifacts come from the same
converter, so most intermediate tensors keep their names; each name the two share (with one shape) is
compared, in the fp32 graph's order, by the PSNR of its worst channel. The first tensor under the bound is
where the error starts; the worst ones are where it is largest. Each format is read in its own runtime: onnxruntime with every tensor made a
graph output, edgeport's MIL evaluator for Core ML, LiteRT with preserve_all_tensors (no delegate, since
XNNPACK keeps its intermediates to itself) for TFLite.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from exporters.base import ArtifactRecord, captured_output
from parity_tests.metrics import compare
from parity_tests.runtimes import dequantize_from, quantize_for, to_artifact_layout

COLLAPSE_DB = 20.0
WORST_SHOWN = 5

Tensors = dict[str, tuple[str, np.ndarray]]   # name -> (producing op type, value), in graph order


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


def _feed(record: ArtifactRecord, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {b.artifact_name: to_artifact_layout(np.asarray(inputs[b.name]), b, np.float32) for b in record.inputs}


def onnx_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(artifact_dir / record.main_file))
    produced = [(out, node.op_type) for node in model.graph.node for out in node.output if out]
    existing = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name, _ in produced if name not in existing)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, _feed(record, inputs))))
    return {name: (op, np.asarray(values[name])) for name, op in produced
            if name in values and np.asarray(values[name]).dtype.kind == "f"}


def coreml_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    from exporters.mil.program import MilEvaluator, load_mil_program

    evaluator = MilEvaluator(load_mil_program(artifact_dir / record.main_file))
    env = evaluator.trace(_feed(record, inputs))
    plain = lambda name: re.sub(r"_cast_fp(16|32)$", "", name)  # noqa: E731  (fp16 programs add the suffix)
    quantized_from: dict[str, str] = {}
    tensors: Tensors = {}
    for op in evaluator.function.operations:
        if op.op_type == "const" or op.op_type.startswith("constexpr"):
            continue
        if op.op_type == "quantize":
            quantized_from[op.outputs[0].name] = op.inputs["input"].name
            continue
        name, label = op.outputs[0].name, op.op_type
        if op.op_type == "dequantize" and op.inputs["input"].name in quantized_from:
            # what the next op reads: the value after its int8 round trip, compared with the float original
            name, label = quantized_from[op.inputs["input"].name], "after int8 quantize/dequantize"
        for var in op.outputs[:1]:
            if var.name in env and env[var.name].is_floating_point():
                tensors[plain(name)] = (label, env[var.name].float().numpy())
    return tensors


def tflite_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with captured_output():
        interp = Interpreter(model_path=str(artifact_dir / record.main_file), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    by_name = {d["name"]: d for d in interp.get_input_details()}
    for name, arr in _feed(record, inputs).items():
        interp.set_tensor(by_name[name]["index"], quantize_for(by_name[name], arr))
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    tensors: Tensors = {}
    for op in interp._get_ops_details():
        for index in op["outputs"]:
            d = details.get(int(index))
            if d is None:
                continue
            value = dequantize_from(d, interp.get_tensor(int(index)))   # int8 activations, as floats
            if value.dtype.kind == "f":
                tensors[d["name"]] = (op["op_name"], value.astype(np.float32))
    return tensors


READERS: dict[str, Callable[[ArtifactRecord, Path, Mapping[str, np.ndarray]], Tensors]] = {
    "onnx": onnx_tensors, "coreml": coreml_tensors, "tflite": tflite_tensors}
ENGINES = {"onnx": "onnxruntime, all tensors as outputs", "coreml": "edgeport MIL evaluator",
           "tflite": "LiteRT interpreter, preserve_all_tensors, no delegate"}


# Intermediate tensors are NCHW in ONNX and Core ML programs; TFLite computes in NHWC.
CHANNEL_AXIS = {"onnx": 1, "coreml": 1, "tflite": -1}


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
    reader = READERS.get(record.format)
    engine = ENGINES.get(record.format, record.format)
    if reader is None:
        return Localization(engine, 0, None, (), note=f"not implemented for {record.format}")
    try:
        reference = reader(fp32_record, fp32_dir, inputs)
        compressed = reader(record, artifact_dir, inputs)
    except Exception as exc:  # localisation explains a failure; it must never hide the failure itself
        return Localization(engine, 0, None, (), note=f"could not read intermediate tensors: {type(exc).__name__}: "
                                                      f"{str(exc)[:200]}")
    if fp32_record.route != record.route:
        return Localization(engine, 0, None, (), note=f"the fp32 artifact came from {fp32_record.route} and this one "
                                                      f"from {record.route}: their tensors do not share names")
    errors = []
    axis = CHANNEL_AXIS.get(record.format, 1)
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
