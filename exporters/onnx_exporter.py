"""ONNX through torch.onnx's dynamo exporter: one self-contained file."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from exporters.base import (ArtifactRecord, ExportError, Exporter, ExportRequest, TensorBinding, captured_output,
                            failing_op, file_records, short_message)

OPSET = 18


def write_onnx(module, example_inputs: tuple, path: Path, input_names: Sequence[str],
               output_names: Sequence[str], dynamic_hw: bool) -> None:
    """Shared by the ONNX format and the onnx2tf route to TFLite."""
    import torch

    dynamic_shapes = None
    if dynamic_hw:
        dim = torch.export.Dim
        dynamic_shapes = tuple({2: dim.DYNAMIC, 3: dim.DYNAMIC} if t.dim() == 4 else {} for t in example_inputs)
    try:
        with captured_output():
            torch.onnx.export(
                module, example_inputs, str(path), input_names=list(input_names), output_names=list(output_names),
                dynamo=True, external_data=False, opset_version=OPSET, dynamic_shapes=dynamic_shapes,
            )
    except Exception as exc:
        message = short_message(exc)
        raise ExportError(f"torch.onnx.export failed: {message}", op=failing_op(str(exc))) from exc


class OnnxExporter(Exporter):
    format = "onnx"
    precisions = ("fp32", "fp16", "w8", "w8a8")

    def export(self, request: ExportRequest) -> ArtifactRecord:
        import onnx
        import torch

        path = request.work_dir / f"{request.stem}.onnx"
        recipe_details: dict = {}
        if request.precision == "fp32":
            write_onnx(request.module, request.example_inputs, path, request.input_names, request.output_names,
                       request.dynamic_hw)
        else:
            from quantize.onnx_recipes import compress_onnx

            with tempfile.TemporaryDirectory(prefix="edgeport-onnx-") as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                write_onnx(request.module, request.example_inputs, fp32, request.input_names,
                           request.output_names, request.dynamic_hw)
                try:
                    with captured_output():
                        recipe_details = compress_onnx(request.precision, fp32, path, request.calibration)
                except Exception as exc:
                    raise ExportError(f"onnxruntime {request.precision} failed: {short_message(exc)}",
                                      op=failing_op(str(exc))) from exc
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)

        def binding(name: str, shape: tuple[int, ...]) -> TensorBinding:
            shown = (shape[0], shape[1], -1, -1) if request.dynamic_hw and len(shape) == 4 else shape
            return TensorBinding(name, name, tuple(shown), "NCHW")

        in_shapes = [tuple(t.shape) for t in request.example_inputs]
        return ArtifactRecord(
            format=self.format, precision=request.precision, route="torch.onnx-dynamo",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=tuple(binding(n, s) for n, s in zip(request.input_names, in_shapes)),
            outputs=tuple(binding(n, s) for n, s in zip(request.output_names, request.output_shapes)),
            details={"opset": opset, "ir_version": proto.ir_version, "dynamic_hw": request.dynamic_hw,
                     "nodes": len(proto.graph.node), **({"recipe": recipe_details} if recipe_details else {})},
            versions={"torch": torch.__version__, "onnx": onnx.__version__, **_ort_version(request.precision)},
        )


def _ort_version(precision: str) -> dict[str, str]:
    if precision == "fp32":
        return {}
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__}


EXPORTER = OnnxExporter()
