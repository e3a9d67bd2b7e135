"""Float I/O around an int8 TFLite graph: litert-torch's PT2E route folds the first quantize into the model
input and the last dequantize into its output (litert-torch has no inference_input_type setting), so an app
would have to feed int8. This puts a QUANTIZE after each such input and a DEQUANTIZE before each such output,
with the int8 tensor's own scale, by editing the flatbuffer: the file then takes and gives float32, as the
contract says for every recipe, and XNNPACK runs both ops.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from edgeport.exporters.tflite_metadata import packed_model, unpacked_model

if TYPE_CHECKING:
    from types import ModuleType


def _opcode(tfl: ModuleType, model: Any, builtin: int, version: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version:
            return index
    code = tfl.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(tfl: ModuleType, graph: Any, index: int) -> int:
    """A float32 tensor with the int8 tensor's name and shape; the int8 one is renamed '<name>/int8'."""
    int8 = graph.tensors[index]
    twin = tfl.TensorT()
    twin.name, twin.shape, twin.shapeSignature = int8.name, int8.shape, int8.shapeSignature
    twin.type, twin.buffer = tfl.TensorType.FLOAT32, 0
    int8.name = int8.name + b"/int8" if isinstance(int8.name, bytes) else f"{int8.name}/int8"
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _op(tfl: ModuleType, opcode: int, inputs: list[int], outputs: list[int], options: Any, options_type: int) -> Any:
    op = tfl.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, inputs, outputs
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def _repoint(model: Any, old: int, new: int, side: str) -> None:
    for signature in model.signatureDefs or []:
        for entry in getattr(signature, side) or []:
            if entry.tensorIndex == old:
                entry.tensorIndex = new


def with_float_io(model_bytes: bytes, float_inputs: Sequence[bool],
                  float_outputs: Sequence[bool]) -> tuple[bytes, list[str]]:
    """The model with an int8 input (output) made float32 where the contract wants float, and what changed."""
    from ai_edge_litert import schema_py_generated as tfl

    model = unpacked_model(model_bytes)
    graph = model.subgraphs[0]
    graph.inputs, graph.outputs = [int(i) for i in graph.inputs], [int(i) for i in graph.outputs]
    changed: list[str] = []
    quantize = dequantize = None
    for position, (index, wanted) in enumerate(zip(list(graph.inputs), float_inputs)):
        if wanted and graph.tensors[index].type == tfl.TensorType.INT8:
            quantize = quantize if quantize is not None else _opcode(tfl, model, tfl.BuiltinOperator.QUANTIZE, 1)
            twin = _float_twin(tfl, graph, index)
            graph.operators.insert(0, _op(tfl, quantize, [twin], [index], tfl.QuantizeOptionsT(),
                                          tfl.BuiltinOptions.QuantizeOptions))
            graph.inputs[position] = twin
            _repoint(model, index, twin, "inputs")
            changed.append(f"input {position}: QUANTIZE float32 -> int8")
    for position, (index, wanted) in enumerate(zip(list(graph.outputs), float_outputs)):
        if wanted and graph.tensors[index].type == tfl.TensorType.INT8:
            dequantize = dequantize if dequantize is not None else _opcode(tfl, model,
                                                                           tfl.BuiltinOperator.DEQUANTIZE, 2)
            twin = _float_twin(tfl, graph, index)
            graph.operators.append(_op(tfl, dequantize, [index], [twin], tfl.DequantizeOptionsT(),
                                       tfl.BuiltinOptions.DequantizeOptions))
            graph.outputs[position] = twin
            _repoint(model, index, twin, "outputs")
            changed.append(f"output {position}: DEQUANTIZE int8 -> float32")
    return (packed_model(model) if changed else model_bytes), changed
