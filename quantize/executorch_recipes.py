"""ExecuTorch recipes: w8a8 through ExecuTorch's XNNPACK quantizer (PT2E, calibrated on the same photos as
every other format), lowered to XNNPACK's int8 kernels."""
from __future__ import annotations

from typing import Any, Sequence

from edgeport.quantize.pt2e import calibrated_int8, qat_int8, xnnpack_quantizer
from edgeport.quantize.steps import register_step


@register_step("executorch", "w8a8", "convert", "XNNPACKQuantizer via PT2E (torchao prepare_pt2e/convert_pt2e)",
               keeps="torch", edges=True, quantizer=xnnpack_quantizer)
def w8a8(module: Any, example_inputs: tuple, calibration: Sequence[tuple], keep: Sequence[str] = ()) -> Any:
    return calibrated_int8(module, example_inputs, calibration, xnnpack_quantizer(), fold_quantize=True, keep=keep)


@register_step("executorch", "w8a8-qat", "convert", "XNNPACKQuantizer QAT via PT2E (prepare_qat_pt2e, distilled)")
def w8a8_qat(module: Any, example_inputs: tuple, calibration: Sequence[tuple], keep: Sequence[str] = ()) -> Any:
    return qat_int8(module, example_inputs, calibration, xnnpack_quantizer(qat=True), fold_quantize=True)
