"""ExecuTorch recipes: w8a8 through ExecuTorch's XNNPACK quantizer (PT2E, calibrated on the same photos as
every other format), lowered to XNNPACK's int8 kernels."""
from __future__ import annotations

from typing import Any, Sequence

from quantize.steps import register_step


@register_step("executorch", "w8a8", "convert", "XNNPACKQuantizer via PT2E (torchao prepare_pt2e/convert_pt2e)")
def w8a8(module: Any, example_inputs: tuple, calibration: Sequence[tuple]) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    from quantize.pt2e import calibrated_int8

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    return calibrated_int8(module, example_inputs, calibration, quantizer, fold_quantize=True)
