"""PT2E static int8, shared by the formats whose converters take a quantized torch program (TFLite through
litert-torch, ExecuTorch through XNNPACK): each brings its own quantizer."""
from __future__ import annotations

from typing import Any, Sequence


def calibrated_int8(module: Any, example_inputs: tuple, calibration: Sequence[tuple], quantizer: Any,
                    fold_quantize: bool = False) -> Any:
    """The exported module with observers calibrated on real inputs, converted to quantize/dequantize pairs."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("w8a8 needs calibration inputs")
    graph = torch.export.export(module, example_inputs).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
    return move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=fold_quantize))
