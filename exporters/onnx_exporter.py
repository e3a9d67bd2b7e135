"""ONNX through torch.onnx's dynamo exporter: one self-contained file; recipes rewrite that file with
onnxruntime's tooling (quantize/onnx_recipes.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from exporters.base import ExportError, Exporter, ExportRequest, export_error, nchw_bindings
from exporters.formats import Format
from runtimes.artifact import ArtifactRecord, file_records
from runtimes.base import captured_output
from runtimes.onnxruntime_runner import OnnxRuntimeRunner, onnx_tensors

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
        raise export_error("torch.onnx.export", exc) from exc


def _write(request: ExportRequest, path: Path) -> dict:
    """The fp32 file, or the recipe's rewrite of it; returns what the recipe step did."""
    from quantize.steps import step_for

    step = step_for("onnx", request.precision)
    args = (request.module, request.example_inputs)
    names = (request.input_names, request.output_names, request.dynamic_hw)
    if step.apply is None:
        write_onnx(*args, path, *names)
        return {}
    with tempfile.TemporaryDirectory(prefix="edgeport-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        write_onnx(*args, fp32, *names)
        try:
            with captured_output():
                return {"tool": step.tool, **step.apply(fp32, path, request.calibration)}
        except Exception as exc:
            raise export_error(f"onnxruntime {request.precision}", exc) from exc


class OnnxExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        import onnx
        import torch

        path = request.work_dir / f"{request.stem}.onnx"
        recipe = _write(request, path)
        proto = onnx.load(str(path), load_external_data=False)
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ExportError(f"the written ONNX file does not pass onnx.checker: {exc}") from exc
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        in_shapes = [tuple(t.shape) for t in request.example_inputs]
        versions = {"torch": torch.__version__, "onnx": onnx.__version__}
        if recipe:
            import onnxruntime

            versions["onnxruntime"] = onnxruntime.__version__
        return ArtifactRecord(
            format="onnx", export_precision=request.precision, route="torch.onnx-dynamo",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=nchw_bindings(request.input_names, in_shapes, request.dynamic_hw),
            outputs=nchw_bindings(request.output_names, request.output_shapes, request.dynamic_hw),
            details={"opset": opset, "ir_version": proto.ir_version, "dynamic_hw": request.dynamic_hw,
                     "nodes": len(proto.graph.node), **({"recipe": recipe} if recipe else {})},
            versions=versions,
        )


FORMAT = Format(
    name="onnx", label="ONNX", exporter=OnnxExporter(), open_runtime=OnnxRuntimeRunner,
    recipe_module="quantize.onnx_recipes", channel_axis=1, read_tensors=onnx_tensors,
    tensors_engine="onnxruntime, all tensors as outputs",
)
