"""Core ML artifacts: Apple's runtime (MLModel.predict) on macOS; elsewhere edgeport's MIL evaluator, which
runs the saved program op by op in PyTorch and says so in its engine label."""
from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import (PARITY_THREADS, RuntimeUnavailable, Tensors, TracedTensor, artifact_feed,
                                    captured_output, from_artifact_layout)

if TYPE_CHECKING:
    from coremltools.converters.mil.mil import Operation, Var


def import_coremltools():
    """coremltools, imported without its import-time warnings on the terminal (shared by the exporter)."""
    with captured_output():
        import coremltools as ct
    return ct


class CoreMLPredictRunner:
    """The real Core ML runtime; only macOS has it."""

    def __init__(self, record: ArtifactRecord, artifact_dir: Path) -> None:
        ct = import_coremltools()
        self.record = record
        self.model = ct.models.MLModel(str(artifact_dir / record.main_file))
        self.engine = f"Core ML MLModel.predict (macOS {platform.mac_ver()[0]}, coremltools {ct.__version__})"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = artifact_feed(self.record.inputs, inputs, np.float32)
        feed = {b.artifact_name: _pil_image(feed[b.artifact_name]) if b.pixels is not None else feed[b.artifact_name]
                for b in self.record.inputs}
        out = self.model.predict(feed)
        return {b.name: from_artifact_layout(_image_levels(out[b.artifact_name]) if b.pixels is not None
                                             else np.asarray(out[b.artifact_name], dtype=np.float32), b)
                for b in self.record.outputs}


def _pil_image(pixels: np.ndarray) -> object:
    """1xCxHxW uint8 -> the PIL image Core ML's ImageType takes (RGB, or L for grayscale)."""
    from PIL import Image

    hwc = pixels[0].transpose(1, 2, 0)
    return Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)


def _image_levels(image: object) -> np.ndarray:
    """A PIL image Core ML returned -> 1xCxHxW float levels."""
    arr = np.asarray(image, dtype=np.float32)
    arr = arr[..., None] if arr.ndim == 2 else arr[..., :3]
    return arr.transpose(2, 0, 1)[None]


class MilProgramRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path) -> None:
        from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program
        from edgeport.runtimes.mil.registry import MilEvalError

        ct = import_coremltools()
        try:
            self.evaluator = MilEvaluator(load_mil_program(artifact_dir / record.main_file))
        except MilEvalError as exc:
            raise RuntimeUnavailable(str(exc)) from exc
        self.record = record
        self.engine = (f"edgeport MIL evaluator (Linux: Core ML predict needs macOS; coremltools {ct.__version__}, "
                       "torch CPU, fp16 rounded per op)")

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.evaluator.run(artifact_feed(self.record.inputs, inputs, np.float32))
        return {b.name: from_artifact_layout(out[b.artifact_name], b) for b in self.record.outputs}


def open_coreml(record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS):
    """Core ML prediction raises off macOS: there the MIL evaluator runs the program instead."""
    if platform.system() == "Darwin":
        return CoreMLPredictRunner(record, artifact_dir)
    return MilProgramRunner(record, artifact_dir)


def coreml_latency_unavailable() -> str:
    """'' where Core ML can be timed; the MIL evaluator is a parity tool, never a latency."""
    if platform.system() == "Darwin":
        return ""
    return "Core ML latency needs macOS (Apple's runtime); the MIL evaluator is not a latency"


def coreml_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    """Every value the program computes; an int8 activation is shown as the value its consumer reads (after
    the quantize/dequantize round trip), under the float tensor's name. Names drop the `_cast_fp16` suffix
    of fp16 programs, so they match the fp32 program's and the names coremltools' op selectors see."""
    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

    evaluator = MilEvaluator(load_mil_program(artifact_dir / record.main_file))
    env = evaluator.trace(artifact_feed(record.inputs, inputs, np.float32))
    alias: dict[str, str] = {}    # a quantize's or dequantize's output -> the float tensor it carries
    tensors: Tensors = {}
    for op in evaluator.function.operations:
        if op.op_type == "const" or op.op_type.startswith("constexpr"):
            continue
        source = op.inputs.get("input")
        if op.op_type == "quantize" or (op.op_type == "dequantize" and source is not None and source.name in alias):
            alias[op.outputs[0].name] = alias.get(source.name, _plain_var(source.name))
            if op.op_type == "quantize":
                continue
        name = alias.get(op.outputs[0].name, _plain_var(op.outputs[0].name))
        value = env.get(op.outputs[0].name)
        if value is None or not value.is_floating_point():
            continue
        if op.outputs[0].name in alias and name in tensors:   # a float tensor's int8 round trip: blamed on
            producer = tensors[name]                           # the op that computed it
            label, unit, ins = f"{producer.op} after int8 round trip", producer.unit, producer.inputs
        else:
            label, unit = op.op_type, _plain_var(op.name)
            ins = tuple(alias.get(v.name, _plain_var(v.name)) for v in _input_vars(op) if v.name in env)
        tensors[name] = TracedTensor(label, value.float().numpy(), unit, ins)
    return tensors


def _plain_var(name: str) -> str:
    return re.sub(r"_cast_fp(16|32)$", "", name)


def _input_vars(op: Operation) -> list[Var]:
    """The op's non-constant inputs (a tuple input, as concat's values, counts each member)."""
    found = []
    for value in op.inputs.values():
        for var in value if isinstance(value, (list, tuple)) else (value,):
            if getattr(var, "op", None) is None or var.op.op_type != "const":
                found.append(var)
    return found
