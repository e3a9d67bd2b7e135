"""Run an artifact in its real runtime; every runtime says which engine it is.

Inputs and outputs cross this boundary as NCHW arrays keyed by contract name; each runtime transposes to
the layout the artifact recorded for itself.
"""
from __future__ import annotations

import importlib.metadata as metadata
import platform
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from exporters.base import ArtifactRecord, TensorBinding, captured_output

PARITY_THREADS = 2


class RuntimeUnavailable(Exception):
    """The runtime cannot run here (say, Core ML prediction off macOS) or lacks an op; never a pass."""


class Runtime(Protocol):
    engine: str

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


RuntimeFactory = Callable[[ArtifactRecord, Path, int], Runtime]
_RUNTIMES: dict[str, RuntimeFactory] = {}


def register_runtime(fmt: str) -> Callable[[RuntimeFactory], RuntimeFactory]:
    def wrap(factory: RuntimeFactory) -> RuntimeFactory:
        _RUNTIMES[fmt] = factory
        return factory
    return wrap


def open_runtime(record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> Runtime:
    if record.format not in _RUNTIMES:
        raise RuntimeUnavailable(f"no runtime registered for format {record.format!r}")
    return _RUNTIMES[record.format](record, artifact_dir, threads)


def to_artifact_layout(array: np.ndarray, binding: TensorBinding, dtype: Any = None) -> np.ndarray:
    array = array.transpose(0, 2, 3, 1) if binding.layout == "NHWC" else array
    return np.ascontiguousarray(array.astype(dtype or binding.dtype, copy=False))


def from_artifact_layout(array: np.ndarray, binding: TensorBinding) -> np.ndarray:
    array = np.asarray(array)
    return array.transpose(0, 3, 1, 2) if binding.layout == "NHWC" else array


class OnnxRuntimeRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.record = record
        self.session = ort.InferenceSession(str(artifact_dir / record.main_file), options,
                                            providers=["CPUExecutionProvider"])
        self.engine = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {b.artifact_name: to_artifact_layout(inputs[b.name], b) for b in self.record.inputs}
        names = [b.artifact_name for b in self.record.outputs]
        values = self.session.run(names, feed)
        return {b.name: from_artifact_layout(v, b) for b, v in zip(self.record.outputs, values)}


class LiteRTRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from exporters.tflite_delegation import delegation_of

        # AUTO applies the default delegate, XNNPACK, as a phone's CPU path would; each delegated partition
        # shows up as a DELEGATE node in the execution plan, so the label is measured, not assumed.
        with captured_output():
            self.interp = Interpreter(model_path=str(artifact_dir / record.main_file), num_threads=threads,
                                      experimental_op_resolver_type=OpResolverType.AUTO)
            self.interp.allocate_tensors()
        self.partitions = delegation_of(self.interp).partitions
        delegate = f"XNNPACK, {self.partitions} partition{'s' if self.partitions > 1 else ''}" if self.partitions \
            else "no XNNPACK delegate"
        self.record = record
        self.in_index = {d["name"]: d["index"] for d in self.interp.get_input_details()}
        self.out_index = {d["name"]: d["index"] for d in self.interp.get_output_details()}
        self.details = {d["index"]: d for d in self.interp.get_input_details() + self.interp.get_output_details()}
        self.engine = f"LiteRT {metadata.version('ai-edge-litert')} Interpreter ({delegate}, {threads} threads)"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for b in self.record.inputs:
            index = self.in_index[b.artifact_name]
            self.interp.set_tensor(index, quantize_for(self.details[index], to_artifact_layout(inputs[b.name], b, float)))
        self.interp.invoke()
        return {b.name: from_artifact_layout(dequantize_from(self.details[self.out_index[b.artifact_name]],
                                                             self.interp.get_tensor(self.out_index[b.artifact_name])), b)
                for b in self.record.outputs}


def quantize_for(detail: Mapping, array: np.ndarray) -> np.ndarray:
    """A float input for an integer tensor goes through the tensor's own scale and zero point, as an app must
    feed it; casting the float would be garbage."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
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


class CoreMLPredictRunner:
    """The real Core ML runtime; only macOS has it."""

    def __init__(self, record: ArtifactRecord, artifact_dir: Path) -> None:
        from exporters.base import captured_output

        with captured_output():
            import coremltools as ct

        self.record = record
        self.model = ct.models.MLModel(str(artifact_dir / record.main_file))
        self.engine = f"Core ML MLModel.predict (macOS {platform.mac_ver()[0]}, coremltools {ct.__version__})"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.predict({b.artifact_name: inputs[b.name] for b in self.record.inputs})
        return {b.name: np.asarray(out[b.artifact_name], dtype=np.float32) for b in self.record.outputs}


@register_runtime("onnx")
def _onnx(record: ArtifactRecord, artifact_dir: Path, threads: int) -> Runtime:
    return OnnxRuntimeRunner(record, artifact_dir, threads)


@register_runtime("tflite")
def _tflite(record: ArtifactRecord, artifact_dir: Path, threads: int) -> Runtime:
    return LiteRTRunner(record, artifact_dir, threads)


@register_runtime("coreml")
def _coreml(record: ArtifactRecord, artifact_dir: Path, threads: int) -> Runtime:
    if platform.system() == "Darwin":
        return CoreMLPredictRunner(record, artifact_dir)
    return MilProgramRunner(record, artifact_dir)   # Core ML prediction raises off macOS


class MilProgramRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path) -> None:
        from exporters.mil.ops import MilEvalError
        from exporters.mil.program import MilEvaluator, load_mil_program

        with captured_output():
            import coremltools as ct

        try:
            self.evaluator = MilEvaluator(load_mil_program(artifact_dir / record.main_file))
        except MilEvalError as exc:
            raise RuntimeUnavailable(str(exc)) from exc
        self.record = record
        self.engine = (f"edgeport MIL evaluator (Linux: Core ML predict needs macOS; coremltools {ct.__version__}, "
                       "torch CPU, fp16 rounded per op)")

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.evaluator.run({b.artifact_name: inputs[b.name] for b in self.record.inputs})
        return {b.name: out[b.artifact_name] for b in self.record.outputs}
