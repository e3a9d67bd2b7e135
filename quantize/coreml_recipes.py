"""Core ML recipes with coremltools.optimize.coreml, applied to the converted mlprogram.

w8a8 needs activation ranges, which coremltools measures with MLModel.predict (macOS only). Here the ranges
come from edgeport's MIL evaluator running the converted (fp16) program on the calibration photos; coremltools'
own graph passes then insert the quantize/dequantize pairs, as its linear_quantize_activations would.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.quantize.steps import declare_step, register_step

if TYPE_CHECKING:
    from types import ModuleType

    from coremltools.models import MLModel
    from coremltools.optimize.coreml import OptimizationConfig

Calibration = Sequence[Mapping[str, np.ndarray]]
# Below this many elements a weight stays float: compressing it saves little and costs accuracy
# (coremltools' default, which leaves a 3-channel first conv alone).
WEIGHT_THRESHOLD = 2048
# A palette is one per tensor at iOS16, so small tensors lose the most to it and save the least: on the
# segmenter, 4-bit palettes from 2048 weights up gave 25.0 dB (605 KB), from 8192 up 54.5 dB (718 KB).
PALETTE_WEIGHT_THRESHOLD = 8192

# keep: MIL ops left at float32 compute (coremltools' op_selector), named as in the fp32 program
declare_step("coreml", "fp16", "coremltools.convert, compute_precision FLOAT16", keeps="artifact",
             edges=True, compute_precision="fp16")


def kept_ops(keep: Sequence[str]) -> dict[str, None]:
    """coremltools' op_name_configs that leave these ops alone, under their names in an fp32 or fp16 program."""
    return {n: None for name in keep for n in (name, f"{name}_cast_fp16")}


def _weight_config(cto: ModuleType, keep: Sequence[str] = ()) -> OptimizationConfig:
    return cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD),
        op_name_configs=kept_ops(keep))


def _kept(keep: Sequence[str], what: str) -> dict[str, Any]:
    return {what: list(keep)} if keep else {}


@register_step("coreml", "w8", "artifact", "coremltools.optimize.coreml.linear_quantize_weights", keeps="artifact")
def w8(mlmodel: MLModel, calibration: Calibration, keep: Sequence[str] = ()) -> tuple[MLModel, dict]:
    import coremltools.optimize as cto

    return cto.coreml.linear_quantize_weights(mlmodel, _weight_config(cto, keep)), {
        "weights": "int8 symmetric per channel", "weight_threshold": WEIGHT_THRESHOLD,
        **_kept(keep, "float_weight_ops")}


def _palettize(mlmodel: MLModel, nbits: int) -> tuple[MLModel, dict]:
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpPalettizerConfig(
        nbits=nbits, mode="kmeans", granularity="per_tensor", weight_threshold=PALETTE_WEIGHT_THRESHOLD))
    return cto.coreml.palettize_weights(mlmodel, config), {
        "weights": f"{nbits}-bit k-means palette per tensor", "weight_threshold": PALETTE_WEIGHT_THRESHOLD}


@register_step("coreml", "palettize4", "artifact", "coremltools.optimize.coreml.palettize_weights")
def palettize4(mlmodel: MLModel, calibration: Calibration) -> tuple[MLModel, dict]:
    return _palettize(mlmodel, 4)


@register_step("coreml", "palettize6", "artifact", "coremltools.optimize.coreml.palettize_weights")
def palettize6(mlmodel: MLModel, calibration: Calibration) -> tuple[MLModel, dict]:
    return _palettize(mlmodel, 6)


@register_step("coreml", "sparse", "artifact",
               "coremltools.optimize.coreml.prune_weights (threshold 0: stores existing zeros sparse)")
def sparse(mlmodel: MLModel, calibration: Calibration) -> tuple[MLModel, dict]:
    """The weights were already zeroed in PyTorch (quantize/variants.py); this stores the zeros as a bit mask."""
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpThresholdPrunerConfig(
        threshold=1e-30, minimum_sparsity_percentile=0.25, weight_threshold=WEIGHT_THRESHOLD))
    return cto.coreml.prune_weights(mlmodel, config), {"weight_threshold": WEIGHT_THRESHOLD}


def activation_ranges(mlmodel: MLModel, calibration: Calibration) -> dict[str, dict[str, float]]:
    """min/max of every non-constant value (and input) over the calibration inputs, by MIL variable name."""
    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

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


def quantize_activations(mlmodel: MLModel, stats: dict[str, dict[str, float]],
                         keep: Sequence[str] = ()) -> MLModel:
    """coremltools' activation-quantization passes, fed with ranges measured off-device."""
    import coremltools.optimize as cto
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml.experimental import _post_training_quantization as ptq

    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.experimental.OpActivationLinearQuantizerConfig(
        mode="linear_symmetric"), op_name_configs=kept_ops(keep))
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


# int8 activations are quantized from an fp16 program, as Core ML runs them on device (coremltools'
# activation passes expect fp16 scales)
@register_step("coreml", "w8a8", "artifact", "coremltools activation-quantization passes + linear_quantize_weights",
               keeps="artifact", edges=True, compute_precision="fp16", minimum_deployment_target="iOS17")
def w8a8(mlmodel: MLModel, calibration: Calibration, keep: Sequence[str] = ()) -> tuple[MLModel, dict]:
    import coremltools.optimize as cto

    if not calibration:
        raise ValueError("w8a8 needs calibration inputs")
    stats = activation_ranges(mlmodel, calibration)
    quantized = cto.coreml.linear_quantize_weights(quantize_activations(mlmodel, stats, keep),
                                                   _weight_config(cto, keep))
    return quantized, {"weights": "int8 symmetric per channel", "activations": "int8 symmetric per tensor",
                       "activation_ranges": "edgeport MIL evaluator on the converted program (predict needs macOS)",
                       "calibration_samples": len(calibration), **_kept(keep, "fp16_ops")}
