"""TFLite recipes. fp16 and w8 rewrite the fp32 .tflite with Google's ai-edge-quantizer; w8a8 is a convert
step: litert-torch converts a module quantized by PT2E (XNNPACK's annotation; int8 kernels end to end), and
the exporter's onnx2tf fallback gets the TF converter's full-integer flags with our calibration photos.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.quantize.pt2e import calibrated_int8, qat_int8, xnnpack_quantizer
from edgeport.quantize.steps import register_step
from edgeport.runtimes.litert import open_interpreter

if TYPE_CHECKING:
    from ai_edge_quantizer.quantizer import Quantizer as AeqQuantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torch import nn
    from torch.fx import GraphModule
    from torchao.quantization.pt2e.quantizer import Quantizer

Calibration = Sequence[Mapping[str, np.ndarray]]


def _unloadable(path: Path) -> str:
    """'' when LiteRT can prepare the model, else its reason."""
    try:
        open_interpreter(path, delegate=False)
    except Exception as exc:  # noqa: BLE001  (the interpreter raises RuntimeError/ValueError with its log)
        return " ".join(str(exc).split())[:200]
    return ""


def _quantizer(fp32_path: Path) -> AeqQuantizer:
    from ai_edge_quantizer import quantizer

    return quantizer.Quantizer(str(fp32_path))


def _keep_float(q: AeqQuantizer, keep: Sequence[str]) -> dict[str, Any]:
    """Ops left unquantized, by output tensor name: ai-edge-quantizer's scope is an op's output names, each
    followed by ';', and the latest matching rule wins."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    for name in keep:
        q.update_quantization_recipe(regex=f"^{re.escape(name)};",
                                     operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                     algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return {"float_ops_by_output": list(keep)} if keep else {}


@register_step("tflite", "fp16", "artifact", "ai-edge-quantizer", keeps="artifact")
def fp16(fp32_path: Path, out_path: Path, calibration: Calibration, keep: Sequence[str] = ()) -> dict[str, Any]:
    """Weights stored as float16, dequantized once at load."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    q = _quantizer(fp32_path)
    q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                             algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    kept = _keep_float(q, keep)
    q.quantize().export_model(str(out_path), overwrite=True)
    return {"weights": "float16", "compute": "float32 (weights dequantized at load)", **kept}


@register_step("tflite", "w8", "artifact", "ai-edge-quantizer", keeps="artifact")
def w8(fp32_path: Path, out_path: Path, calibration: Calibration, keep: Sequence[str] = ()) -> dict[str, Any]:
    """Dynamic range: int8 weights per channel, activations quantized at run time by the kernels (XNNPACK
    runs them in int8)."""
    from ai_edge_quantizer import recipe as aeq_recipe

    q = _quantizer(fp32_path)
    q.load_quantization_recipe(aeq_recipe.dynamic_wi8_afp32())
    kept = _keep_float(q, keep)
    q.quantize().export_model(str(out_path), overwrite=True)
    problem = _unloadable(out_path)
    if not problem:
        return {"weights": "int8 per channel", "activations": "dynamic range (quantized at run time)", **kept}
    # seen on a MobileNet + attention graph: a dynamic-range conv whose kernel refuses its int8 output
    # ("output->type != input_type"); weight-only int8 keeps float compute and always prepares
    q = _quantizer(fp32_path)
    q.load_quantization_recipe(aeq_recipe.weight_only_wi8_afp32())
    kept = _keep_float(q, keep)
    q.quantize().export_model(str(out_path), overwrite=True)
    return {"weights": "int8 per channel", "activations": "float32 (weight-only: dequantized at load)",
            "fallback_from": f"dynamic range: {problem}", **kept}


def onnx2tf_int8_args(calibration: Calibration, input_names: Sequence[str], work: Path) -> list[str]:
    """onnx2tf's full-integer flags, with -cind: one NHWC .npy per input, with mean 0 and std 1 so it feeds
    our values unchanged."""
    args = ["-oiqt", "-qt", "per-channel"]
    for name in input_names:
        stack = np.concatenate([np.asarray(c[name]) for c in calibration])
        if stack.ndim == 4:
            stack = stack.transpose(0, 2, 3, 1)
        path = work / f"calib_{name}.npy"
        np.save(path, stack.astype(np.float32))
        channels = stack.shape[-1]
        zeros, ones = "[[[[" + ",".join(["0"] * channels) + "]]]]", "[[[[" + ",".join(["1"] * channels) + "]]]]"
        args += ["-cind", name, str(path), zeros, ones]
    return args


def _litert_quantizer() -> Quantizer:
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def litert_quant_config() -> QuantConfig:
    """What tells litert-torch's converter that the program carries PT2E quantize/dequantize pairs."""
    from litert_torch.quantize import quant_config

    return quant_config.QuantConfig(pt2e_quantizer=_litert_quantizer())


def w8a8_quantizer() -> Quantizer:
    """XNNPACK's annotation first (quantize/pt2e.py says why), then litert-torch's for what it leaves: the
    fixed scales TFLite's int8 kernels demand (LOGISTIC's output must be 1/256, or LiteRT refuses the file)."""
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    return ComposableQuantizer([xnnpack_quantizer(), _litert_quantizer()])


@register_step("tflite", "w8a8", "convert", "XNNPACKQuantizer (then litert-torch's for fixed scales) via PT2E "
               "(torchao prepare_pt2e/convert_pt2e), converted by litert-torch", keeps="torch", edges=True, quantizer=w8a8_quantizer,
               onnx2tf_args=onnx2tf_int8_args, onnx2tf_tool="onnx2tf -oiqt (TF converter full-integer)")
def w8a8(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple],
         keep: Sequence[str] = ()) -> tuple[GraphModule, QuantConfig]:
    """The module with int8 observers calibrated on real inputs and converted (the modules in `keep` left
    float); and litert-torch's config. The annotation is XNNPACK's (quantize/pt2e.py says why), the int8
    scheme litert-torch's own: symmetric per-channel weights, per-tensor activations."""
    return calibrated_int8(module, example_inputs, calibration, w8a8_quantizer(), keep=keep), \
        litert_quant_config()


# float_inside_pixels: the fine-tune trains the float module (its loss needs float outputs, and an 8-bit
# image output has no gradient), so the pixel conversion is put around the quantized program afterwards
@register_step("tflite", "w8a8-qat", "convert", "PT2E QAT (torchao prepare_qat_pt2e with ExecuTorch's XNNPACKQuantizer "
               "QAT config, distilled), converted by litert-torch", float_inside_pixels=True)
def w8a8_qat(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple],
             keep: Sequence[str] = ()) -> tuple[GraphModule, QuantConfig]:
    """litert-torch's own QAT annotator fails here (its conv-bn pattern hands torch.export a function under
    torch 2.13), so the fake-quantized program is annotated with XNNPACK's QAT config, the same symmetric
    per-channel int8 scheme, and litert-torch converts its quantize/dequantize pairs as for w8a8."""
    program = qat_int8(module, example_inputs, calibration, xnnpack_quantizer(qat=True))
    return program, litert_quant_config()
