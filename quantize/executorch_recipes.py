"""ExecuTorch recipes: w8a8 through ExecuTorch's XNNPACK quantizer (PT2E, calibrated on the same photos as
every other format), lowered to XNNPACK's int8 kernels."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from edgeport.quantize.pt2e import calibrated_int8, qat_int8, xnnpack_quantizer
from edgeport.quantize.steps import register_step

if TYPE_CHECKING:
    from torch import nn
    from torch.fx import GraphModule


@register_step("executorch", "w8a8", "convert", "XNNPACKQuantizer via PT2E (torchao prepare_pt2e/convert_pt2e)",
               keeps="torch", edges=True, quantizer=xnnpack_quantizer)
def w8a8(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple],
         keep: Sequence[str] = ()) -> GraphModule:
    return calibrated_int8(module, example_inputs, calibration, xnnpack_quantizer(), fold_quantize=True, keep=keep)


@register_step("executorch", "w8a8-qat", "convert", "XNNPACKQuantizer QAT via PT2E (prepare_qat_pt2e, distilled)")
def w8a8_qat(module: nn.Module, example_inputs: tuple, calibration: Sequence[tuple],
             keep: Sequence[str] = ()) -> GraphModule:
    return qat_int8(module, example_inputs, calibration, xnnpack_quantizer(qat=True), fold_quantize=True)
