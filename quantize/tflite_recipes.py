"""TFLite recipes. fp16 and w8 post-process the fp32 .tflite with Google's ai-edge-quantizer; w8a8 quantizes
the PyTorch graph with litert-torch's PT2E quantizer (int8 kernels end to end), and the TFLite exporter falls
back to onnx2tf's integer quantization when that fails.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

POST_CONVERSION = ("fp16", "w8")


def compress_tflite_file(recipe: str, fp32_path: Path, out_path: Path) -> dict[str, Any]:
    """fp16: weights stored as float16 (dequantized once at load); w8: dynamic range (int8 weights per
    channel, activations quantized at run time by the kernels, which XNNPACK runs in int8)."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe as aeq_recipe

    q = quantizer.Quantizer(str(fp32_path))
    if recipe == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
        what = {"weights": "float16", "compute": "float32 (weights dequantized at load)"}
    elif recipe == "w8":
        q.load_quantization_recipe(aeq_recipe.dynamic_wi8_afp32())
        what = {"weights": "int8 per channel", "activations": "dynamic range (quantized at run time)"}
    else:
        raise ValueError(f"{recipe} is not a post-conversion TFLite recipe")
    q.quantize().export_model(str(out_path), overwrite=True)
    problem = _unloadable(out_path)
    if recipe == "w8" and problem:
        # seen on a MobileNet + attention graph: a dynamic-range conv whose kernel refuses its int8 output
        # ("output->type != input_type"); weight-only int8 keeps float compute and always prepares
        q = quantizer.Quantizer(str(fp32_path))
        q.load_quantization_recipe(aeq_recipe.weight_only_wi8_afp32())
        q.quantize().export_model(str(out_path), overwrite=True)
        what = {"weights": "int8 per channel", "activations": "float32 (weight-only: dequantized at load)",
                "fallback_from": f"dynamic range: {problem}"}
    return {"tool": "ai-edge-quantizer", **what}


def _unloadable(path: Path) -> str:
    """'' when LiteRT can prepare the model, else its reason."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_path=str(path)).allocate_tensors()
    except Exception as exc:  # noqa: BLE001  (the interpreter raises RuntimeError/ValueError with its log)
        return " ".join(str(exc).split())[:200]
    return ""


def pt2e_int8_module(module: Any, example_inputs: tuple, calibration: Sequence[tuple]) -> tuple[Any, Any]:
    """The module with int8 observers calibrated on real inputs and converted; and litert-torch's config."""
    import torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph = torch.export.export(module, example_inputs).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
    converted = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
    return converted, quant_config.QuantConfig(pt2e_quantizer=quantizer)


def onnx2tf_calibration_args(calibration: Sequence[Mapping[str, np.ndarray]], input_names: Sequence[str],
                             work: Path) -> list[str]:
    """onnx2tf's -cind: one NHWC .npy per input, with mean 0 and std 1 so it feeds our values unchanged."""
    args: list[str] = []
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
