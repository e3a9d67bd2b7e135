"""ONNX artifacts in onnxruntime's CPU provider: a runner for parity and latency, and every intermediate
tensor for error localisation."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import PARITY_THREADS, Tensors, TracedTensor, artifact_feed, from_artifact_layout

if TYPE_CHECKING:
    from onnx import NodeProto
    from onnxruntime import InferenceSession


def _options(threads: int, optimize: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not optimize:   # keep every tensor the graph names
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


class OnnxRuntimeRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> None:
        import onnxruntime as ort

        self.record = record
        self.session = ort.InferenceSession(str(artifact_dir / record.main_file), _options(threads),
                                            providers=["CPUExecutionProvider"])
        self.engine = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [b.artifact_name for b in self.record.outputs]
        values = self.session.run(names, artifact_feed(self.record.inputs, inputs))
        return {b.name: from_artifact_layout(v, b) for b, v in zip(self.record.outputs, values)}


def every_tensor_session(model_path: Path) -> tuple[InferenceSession, list[tuple[str, NodeProto]]]:
    """A session whose outputs are every tensor a node produces, run unoptimised so each keeps its name; with
    (tensor name, the node that produces it) in graph order. Error localisation and w8a8's constant-node
    pass read the graph this way."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    produced = [(out, node) for node in model.graph.node for out in node.output if out]
    existing = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name, _ in produced if name not in existing)
    session = ort.InferenceSession(model.SerializeToString(), _options(PARITY_THREADS, optimize=False),
                                   providers=["CPUExecutionProvider"])
    return session, produced


def onnx_tensors(record: ArtifactRecord, artifact_dir: Path, inputs: Mapping[str, np.ndarray]) -> Tensors:
    """Every float tensor a node produces, made a graph output and run unoptimised."""
    session, produced = every_tensor_session(artifact_dir / record.main_file)
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, artifact_feed(record.inputs, inputs, np.float32))))
    traced: Tensors = {}
    for name, node in produced:   # int8 tensors too: the mixed-precision search walks back through them
        if name in values:
            value = np.asarray(values[name])
            traced[name] = TracedTensor(node.op_type, value.astype(np.float32) if value.dtype.kind == "f" else value,
                                        node.name, tuple(i for i in node.input if i))
    return traced
