"""ONNX recipes with onnxruntime's own tooling, each rewriting the fp32 file the ONNX exporter wrote."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.quantize.steps import register_step
from edgeport.runtimes.onnxruntime_runner import every_tensor_session

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

Calibration = Sequence[Mapping[str, np.ndarray]]


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over our calibration inputs."""

    def __init__(self, batches: Calibration) -> None:
        self._items = iter([dict(b) for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # onnxruntime calls it on some paths; one pass is all it needs here
        pass


def _preprocessed(src: Path, work: Path) -> tuple[Path, str]:
    """onnxruntime's recommended pre-pass (shape inference, graph optimisation); the fp32 file if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "preprocessed.onnx"
    try:
        quant_pre_process(str(src), str(out))
        return out, "quant_pre_process"
    except Exception as exc:  # its symbolic shape inference rejects some graphs; quantizing still works
        return src, f"quant_pre_process skipped ({type(exc).__name__})"


def topologically_sorted(model: ModelProto) -> ModelProto:
    """Nodes in dependency order (the fp16 converter appends its input casts at the end, which ONNX forbids)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progress = [n for n in pending if all(i in ready for i in n.input)]
        if not progress:
            raise ValueError("the ONNX graph has a cycle or an input nothing produces")
        for node in progress:
            ordered.append(node)
            ready.update(node.output)
        placed = {id(n) for n in progress}
        pending = [n for n in pending if id(n) not in placed]
    del graph.node[:]
    graph.node.extend(ordered)
    return model


@register_step("onnx", "fp16", "artifact", "onnxruntime.transformers.float16", keeps="artifact",
               edges=True)
def fp16(fp32_path: Path, out_path: Path, calibration: Calibration, keep: Sequence[str] = ()) -> dict[str, Any]:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True, node_block_list=list(keep))
    if keep:
        model = without_cast_round_trips(model)
    onnx.save(topologically_sorted(model), str(out_path))
    return {"io": "float32 (cast inside)", **_kept(keep, "float32_nodes")}


def without_cast_round_trips(model: ModelProto) -> ModelProto:
    """Drop float32 -> float16 -> float32 cast pairs: the converter casts every kept node's output to fp16 and
    back for the next kept node, so a kept region would still round each activation."""
    from onnx import TensorProto

    graph = model.graph

    def cast_to(node: NodeProto) -> int | None:
        """The type a cast the converter inserted casts to (None for any other node: a model's own casts,
        from uint8 pixels say, are not round trips)."""
        if node.op_type != "Cast" or not node.name.endswith(("_cast_to_fp16_node", "_cast_to_fp32_node")):
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    bypass: dict[str, str] = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if cast_to(node) == TensorProto.FLOAT and first is not None and cast_to(first) == TensorProto.FLOAT16 \
                and node.output[0] not in outputs:
            bypass[node.output[0]] = first.input[0]
    if not bypass:
        return model
    kept = [n for n in graph.node if not (n.output and n.output[0] in bypass)]
    for node in kept:
        node.input[:] = [bypass.get(i, i) for i in node.input]
    used = {i for n in kept for i in n.input} | outputs
    kept = [n for n in kept if cast_to(n) != TensorProto.FLOAT16 or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _kept(keep: Sequence[str], what: str) -> dict[str, Any]:
    return {what: list(keep)} if keep else {}


@register_step("onnx", "w8", "artifact", "onnxruntime.quantization.quantize_dynamic", keeps="artifact")
def w8(fp32_path: Path, out_path: Path, calibration: Calibration, keep: Sequence[str] = ()) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgeport-ortq-") as tmp:
        src, pre = _preprocessed(fp32_path, Path(tmp))
        quantize_dynamic(str(src), str(out_path), per_channel=True, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(keep))
    return {"weights": "int8 per channel", "activations": "quantized at run time per tensor "
            "(ConvInteger/MatMulInteger)", "pre_pass": pre, **_kept(keep, "float_nodes")}


@register_step("onnx", "w8a8", "artifact", "onnxruntime.quantization.quantize_static", keeps="artifact",
               edges=True)
def w8a8(fp32_path: Path, out_path: Path, calibration: Calibration, keep: Sequence[str] = ()) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ValueError("w8a8 needs calibration inputs")
    with tempfile.TemporaryDirectory(prefix="edgeport-ortq-") as tmp:
        src, pre = _preprocessed(fp32_path, Path(tmp))
        constant = [n for n in constant_nodes(src, calibration) if n not in keep]
        quantize_static(str(src), str(out_path), _Batches(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=[*keep, *constant])
    return {"format": "QDQ", "weights": "int8 per channel", "activations": "int8 per tensor, min/max calibrated",
            "calibration_samples": len(calibration), "pre_pass": pre, **_kept(keep, "float_nodes"),
            **_kept(constant, "constant_float_nodes")}


def constant_nodes(model_path: Path, calibration: Calibration) -> list[str]:
    """Nodes whose float outputs hold one value on every calibration input (a dead branch, a zeroed conv).
    onnxruntime's static quantization of such a node sank the whole output (a ReLU branch that is always 0:
    16.6 dB, 54.0 dB with its two nodes kept float), so they stay float and the row says so."""
    session, produced = every_tensor_session(model_path)
    names = [o.name for o in session.get_outputs()]
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for batch in calibration:
        for name, value in zip(names, session.run(names, dict(batch))):
            if value.dtype.kind == "f" and value.size:
                low[name] = min(low.get(name, np.inf), float(value.min()))
                high[name] = max(high.get(name, -np.inf), float(value.max()))
    dead = {name for name in low if low[name] == high[name]}
    return list(dict.fromkeys(node.name for out, node in produced if out in dead and node.op_type != "Constant"))
