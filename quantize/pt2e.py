"""PT2E static int8, shared by the formats whose converters take a quantized torch program (TFLite through
litert-torch, ExecuTorch through XNNPACK): each brings its own quantizer.

Mixed precision on this route keeps whole torch modules float: their nodes are marked as annotated with no
quantization before the format's quantizer annotates the rest, which works for any PT2E quantizer (neither
litert-torch's nor XNNPACK's `set_module_name` takes None yet).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from edgeport.models.threads import one_torch_thread
from edgeport.runtimes.base import Tensors, TracedTensor

if TYPE_CHECKING:
    from torch import nn
    from torch.fx import GraphModule, Node
    from torchao.quantization.pt2e.quantizer import Quantizer


def module_path(node: Node) -> str:
    """The innermost module a graph node was traced in ('' for the top-level forward)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def in_kept(path: str, kept: Sequence[str]) -> bool:
    """`path` is a kept module or inside one; a wrapper's prefix (the pixel I/O's `inner.`) is allowed."""
    dotted = f".{path}."
    return any(f".{k}." in dotted for k in kept if k)


def _keeping(quantizer: Quantizer, kept: Sequence[str]) -> Quantizer:
    """The quantizer, with the kept modules' nodes pre-annotated as 'no quantization'."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer

    class KeepFloat(Quantizer):
        def transform_for_annotation(self, model: GraphModule) -> GraphModule:
            return quantizer.transform_for_annotation(model)

        def annotate(self, model: GraphModule) -> GraphModule:
            for node in model.graph.nodes:
                if node.op == "call_function" and in_kept(module_path(node), kept):
                    node.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
            return quantizer.annotate(model)

        def validate(self, model: GraphModule) -> None:
            quantizer.validate(model)

    return KeepFloat()


def without_dropout(module: nn.Module) -> nn.Module:
    """A copy with every Dropout made an Identity (what it is in eval mode): litert-torch's int8 file of a
    classifier with an eval-mode Dropout before its last Linear was wrong (MobileNetV2: 6.0 dB where the PT2E
    module gave 24.7; without the Dropout 24.9)."""
    import copy

    from torch import nn

    if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules()):
        return module
    stripped = copy.deepcopy(module)
    for child in list(stripped.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.modules.dropout._DropoutNd):
                setattr(child, attr, nn.Identity())
    return stripped


def calibrated_int8(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple], quantizer: Quantizer,
                    fold_quantize: bool = False, keep: Sequence[str] = ()) -> GraphModule:
    """The exported module with observers calibrated on real inputs, converted to quantize/dequantize pairs;
    the modules named in `keep` stay float."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("w8a8 needs calibration inputs")
    graph = torch.export.export(without_dropout(module), example_inputs).module()

    prepared = prepare_pt2e(graph, _keeping(quantizer, keep) if keep else quantizer)
    with torch.no_grad(), one_torch_thread():     # the observed ranges, hence the scales, on any core count
        for batch in calibration:
            prepared(*batch)
    return move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=fold_quantize))


QAT_TARGET_DB = 50.0      # the fake-quantized program this close to the float model on the training photos
QAT_STEPS = 150
QAT_SECONDS = 300.0
QAT_LEARNING_RATE = 1e-4


def _pt2e_mode(program: GraphModule, training: bool) -> None:
    """torchao's switch: BatchNorm keeps its statistics (eval) either way, observers and fake quantize stay on."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(program)


def xnnpack_quantizer(qat: bool = False) -> Quantizer:
    """ExecuTorch's XNNPACKQuantizer, symmetric per-channel int8 weights: the annotation of both PT2E routes.
    It observes concatenations and activations itself; litert-torch's own quantizer leaves LeakyReLU and
    the inputs of a concatenation float, its converter then gives them int8 scales borrowed from a neighbour,
    and the file drifts from its program (official realesrgan-x4plus: 18.0 dB in TFLite where the same
    program reaches 31.0 in PyTorch)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


def qat_int8(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple], quantizer: Quantizer,
             fold_quantize: bool = False, report: Callable[[str], None] = lambda _: None) -> GraphModule:
    """Quantization-aware fine-tuning: the PT2E program with fake quantize, distilled from the float module
    on the calibration photos (whole inputs: the program has one shape), then converted. The converted
    program's `meta["edgeport_recipe"]` says what the fine-tune did."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    from edgeport.quantize.recover import distil

    if not calibration:
        raise ValueError("w8a8+qat needs calibration inputs")
    graph = torch.export.export(without_dropout(module), example_inputs).module()
    prepared = prepare_qat_pt2e(graph, quantizer)
    _pt2e_mode(prepared, False)
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
    tuned = distil(prepared, module.eval(), list(calibration), target_db=QAT_TARGET_DB, max_steps=QAT_STEPS,
                   max_seconds=QAT_SECONDS, report=report, crop=False, set_mode=_pt2e_mode,
                   learning_rate=QAT_LEARNING_RATE, teacher_name="the float model")
    converted = convert_pt2e(tuned.module, fold_quantize=fold_quantize)
    _pt2e_mode(converted, False)
    converted.meta["edgeport_recipe"] = {"qat": tuned.to_dict()}
    return converted


def traced_program(graph_module: GraphModule, inputs: tuple) -> Tensors:
    """Every value a torch graph computes, with the module that computed it as the unit: the PT2E route's
    counterpart of an artifact's traced tensors (the search blames modules from these)."""
    import torch
    from torch.fx import Interpreter

    values: dict[str, Any] = {}

    class Recorder(Interpreter):
        def run_node(self, node: Node) -> Any:
            out = super().run_node(node)
            if node.op == "call_function" and isinstance(out, torch.Tensor):
                values[node.name] = out
            return out

    with torch.no_grad():
        Recorder(graph_module).run(*inputs)
    traced: Tensors = {}
    for node in graph_module.graph.nodes:
        if node.name in values:
            value = values[node.name]
            array = value.detach().float().numpy() if value.is_floating_point() else value.detach().numpy()
            traced[node.name] = TracedTensor(str(node.target).split(".")[-2] if "." in str(node.target)
                                             else str(node.target), array, module_path(node),
                                             tuple(a.name for a in node.all_input_nodes))
    return traced


def pt2e_traces(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple], quantizer: Quantizer,
                sample: tuple, keep: Sequence[str] = ()) -> tuple[Tensors, Tensors]:
    """(float program, int8 program) traced on one sample, the int8 one as its quantize/dequantize pairs
    compute it in float (what the converters translate op for op)."""
    import torch

    reference = traced_program(torch.export.export(without_dropout(module), example_inputs).module(), sample)
    quantized = calibrated_int8(module, example_inputs, calibration, quantizer, keep=keep)
    return reference, traced_program(quantized, sample)


def as_batches(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[tuple]:
    """Input rows (name -> array) as torch tensors in input order, copied: what PT2E observers and the
    fine-tunes take."""
    import numpy as np
    import torch

    return [tuple(torch.tensor(np.asarray(r[n])) for n in names) for r in rows]
