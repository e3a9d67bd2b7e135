"""TFLite artifacts in LiteRT's Interpreter with the XNNPACK delegate, as a phone's CPU path runs them; and,
for error localisation, without a delegate and with every intermediate tensor kept."""
from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import (PARITY_THREADS, Tensors, TracedTensor, artifact_feed, captured_output,
                                    from_artifact_layout)
from edgeport.runtimes.xnnpack_delegation import Delegation, delegation_of

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


def open_interpreter(path: Path, threads: int = PARITY_THREADS, delegate: bool = True,
                     keep_tensors: bool = False) -> Interpreter:
    """An allocated Interpreter. AUTO applies the default delegate, XNNPACK; each partition it takes shows up
    as a DELEGATE node in the execution plan, so XNNPACK's use is measured, never assumed."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with captured_output():
        interp = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver,
                             experimental_preserve_all_tensors=keep_tensors)
        interp.allocate_tensors()
    return interp


def xnnpack_delegation(path: Path, threads: int = 2) -> Delegation:
    """How XNNPACK partitions the file: what the interpreter's execution plan shows after delegation."""
    return delegation_of(open_interpreter(path, threads))


def litert_version() -> str:
    return metadata.version("ai-edge-litert")


class LiteRTRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> None:
        self.interp = open_interpreter(artifact_dir / record.main_file, threads)
        self.partitions = delegation_of(self.interp).partitions
        delegate = f"XNNPACK, {self.partitions} partition{'s' if self.partitions > 1 else ''}" if self.partitions \
            else "no XNNPACK delegate"
        self.record = record
        self.in_index = {d["name"]: d["index"] for d in self.interp.get_input_details()}
        self.out_index = {d["name"]: d["index"] for d in self.interp.get_output_details()}
        self.details = {d["index"]: d for d in self.interp.get_input_details() + self.interp.get_output_details()}
        self.engine = f"LiteRT {litert_version()} Interpreter ({delegate}, {threads} threads)"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in artifact_feed(self.record.inputs, inputs, np.float32).items():
            index = self.in_index[name]
            self.interp.set_tensor(index, quantize_for(self.details[index], array))
        self.interp.invoke()
        out = {}
        for b in self.record.outputs:
            index = self.out_index[b.artifact_name]
            out[b.name] = from_artifact_layout(dequantize_from(self.details[index], self.interp.get_tensor(index)), b)
        return out


def quantize_for(detail: Mapping, array: np.ndarray) -> np.ndarray:
    """A float input for an integer tensor goes through the tensor's own scale and zero point, as an app must
    feed it; casting the float would be garbage."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or array.dtype == dtype:   # floats, and 8-bit pixels for a uint8 image input
        return np.ascontiguousarray(array.astype(dtype, copy=False))
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        raise ValueError(f"TFLite input {detail['name']} is {dtype.name} without quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_from(detail: Mapping, array: np.ndarray) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.asarray(array).dtype.kind in "iu" and scale:
        return (np.asarray(array).astype(np.float32) - zero) * scale
    return np.array(array, copy=True)


def tflite_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    """Every intermediate tensor, with no delegate (XNNPACK keeps its intermediates to itself); int8
    activations come back as floats. TFLite computes in NHWC."""
    interp = open_interpreter(artifact_dir / record.main_file, delegate=False, keep_tensors=True)
    by_name = {d["name"]: d for d in interp.get_input_details()}
    for name, arr in artifact_feed(record.inputs, inputs, np.float32).items():
        interp.set_tensor(by_name[name]["index"], quantize_for(by_name[name], arr))
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    tensors: Tensors = {}
    for op in interp._get_ops_details():
        for index in op["outputs"]:
            d = details.get(int(index))
            if d is None:
                continue
            value = dequantize_from(d, interp.get_tensor(int(index)))
            if value.dtype.kind == "f":
                ins = tuple(details[int(i)]["name"] for i in op["inputs"] if int(i) in details)
                tensors[d["name"]] = TracedTensor(op["op_name"], value.astype(np.float32), d["name"], ins)
    return tensors
