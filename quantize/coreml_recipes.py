"""Core ML recipes with coremltools.optimize.coreml, applied to the converted fp32 mlprogram.

w8a8 needs activation ranges, which coremltools measures with MLModel.predict (macOS only). Here the ranges
come from edgeport's MIL evaluator running the converted (fp16) program on the calibration photos; coremltools'
own graph passes then insert the quantize/dequantize pairs, as its linear_quantize_activations would.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

# Below this many elements a weight stays float: compressing it saves little and costs accuracy
# (coremltools' default, which leaves a 3-channel first conv alone).
WEIGHT_THRESHOLD = 2048
# A palette is one per tensor at iOS16, so small tensors lose the most to it and save the least: on the
# segmenter, 4-bit palettes from 2048 weights up gave 25.0 dB (605 KB), from 8192 up 54.5 dB (718 KB).
PALETTE_WEIGHT_THRESHOLD = 8192


def _weight_config(cto: Any) -> Any:
    return cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD))


def activation_ranges(mlmodel: Any, calibration: Sequence[Mapping[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """min/max of every non-constant value (and input) over the calibration inputs, by MIL variable name."""
    from exporters.mil.program import MilEvaluator, load_mil_program

    with tempfile.TemporaryDirectory(prefix="edgeport-calib-") as tmp:
        package = Path(tmp) / "fp32.mlpackage"
        mlmodel.save(str(package))
        evaluator = MilEvaluator(load_mil_program(package))
        stats: dict[str, dict[str, float]] = {}
        outputs = {v.name for v in evaluator.function.outputs}
        for sample in calibration:
            for name, value in evaluator.trace(sample).items():
                if name in outputs or not value.is_floating_point():
                    continue
                lo, hi = float(value.min()), float(value.max())
                entry = stats.setdefault(name, {"rmin": lo, "rmax": hi})
                entry["rmin"], entry["rmax"] = min(entry["rmin"], lo), max(entry["rmax"], hi)
    return stats


def quantize_activations(mlmodel: Any, stats: dict[str, dict[str, float]]) -> Any:
    """coremltools' activation-quantization passes, fed with ranges measured off-device."""
    import coremltools.optimize as cto
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml.experimental import _post_training_quantization as ptq

    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.experimental.OpActivationLinearQuantizerConfig(
        mode="linear_symmetric"))
    try:  # share one range across a concat's inputs and output, as coremltools does on macOS
        from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger

        ptq._adjust_concat_surrounding_activation_stats(ModelDebugger(mlmodel)._get_concat_op_info(), stats)
    except Exception:  # noqa: BLE001  (an optimisation; quantization is correct without it)
        pass
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair",
                 "compression::insert_suffix_quantize_dequantize_pair"):
        graph_pass = PASS_REGISTRY[name]
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(mlmodel, passes, spec_version=_SPECIFICATION_VERSION_IOS_17,
                                         pymil_load_func=milproto_load.load, skip_model_load=True)


def compress_coreml(recipe: str, mlmodel: Any, calibration: Sequence[Mapping[str, np.ndarray]]) -> tuple[Any, dict]:
    """The compressed model and what was done, for the manifest."""
    import coremltools.optimize as cto

    opt = cto.coreml
    if recipe == "w8":
        return opt.linear_quantize_weights(mlmodel, _weight_config(cto)), {
            "tool": "coremltools.optimize.coreml.linear_quantize_weights", "weights": "int8 symmetric per channel",
            "weight_threshold": WEIGHT_THRESHOLD}
    if recipe in ("palettize4", "palettize6"):
        nbits = int(recipe[-1])
        config = opt.OptimizationConfig(global_config=opt.OpPalettizerConfig(
            nbits=nbits, mode="kmeans", granularity="per_tensor", weight_threshold=PALETTE_WEIGHT_THRESHOLD))
        return opt.palettize_weights(mlmodel, config), {
            "tool": "coremltools.optimize.coreml.palettize_weights", "weights": f"{nbits}-bit k-means palette per tensor",
            "weight_threshold": PALETTE_WEIGHT_THRESHOLD}
    if recipe == "sparse":
        # the weights were already zeroed in PyTorch (quantize.sparsity); this stores the zeros as a bit mask
        config = opt.OptimizationConfig(global_config=opt.OpThresholdPrunerConfig(
            threshold=1e-30, minimum_sparsity_percentile=0.25, weight_threshold=WEIGHT_THRESHOLD))
        return opt.prune_weights(mlmodel, config), {
            "tool": "coremltools.optimize.coreml.prune_weights (threshold 0: stores existing zeros sparse)",
            "weight_threshold": WEIGHT_THRESHOLD}
    if recipe == "w8a8":
        if not calibration:
            raise ValueError("w8a8 needs calibration inputs")
        stats = activation_ranges(mlmodel, calibration)
        quantized = opt.linear_quantize_weights(quantize_activations(mlmodel, stats), _weight_config(cto))
        return quantized, {"tool": "coremltools activation-quantization passes + linear_quantize_weights",
                           "weights": "int8 symmetric per channel", "activations": "int8 symmetric per tensor",
                           "activation_ranges": "edgeport MIL evaluator on the converted program (predict needs macOS)",
                           "calibration_samples": len(calibration), "minimum_deployment_target": "iOS17"}
    raise ValueError(f"Core ML has no recipe {recipe!r}")
