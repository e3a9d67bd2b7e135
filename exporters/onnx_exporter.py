"""ONNX through torch.onnx's dynamo exporter: one self-contained file; recipes rewrite that file with
onnxruntime's tooling (quantize/onnx_recipes.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from edgeport.exporters.base import Exporter, ExportError, ExportRequest, export_error
from edgeport.exporters.formats import Format
from edgeport.exporters.image_io import dynamic_shapes_for, pixel_request
from edgeport.exporters.metadata import with_onnx_metadata
from edgeport.quantize.steps import step_for
from edgeport.runtimes.artifact import ArtifactRecord, TensorBinding, file_records
from edgeport.runtimes.base import captured_output
from edgeport.runtimes.onnxruntime_runner import OnnxRuntimeRunner, onnx_tensors

if TYPE_CHECKING:
    from onnx import ModelProto, ValueInfoProto

OPSET = 18


def write_onnx(module, example_inputs: tuple, path: Path, input_names: Sequence[str],
               output_names: Sequence[str], dynamic_hw: bool, nhwc: Sequence[bool] = ()) -> None:
    """Shared by the ONNX format and the onnx2tf route to TFLite. nhwc: which inputs are NHWC images."""
    import torch

    dynamic_shapes = None
    if dynamic_hw:
        dim = torch.export.Dim
        axes = [(1, 2) if i < len(nhwc) and nhwc[i] else (2, 3) for i in range(len(example_inputs))]
        dynamic_shapes = dynamic_shapes_for(module, tuple({a: dim.DYNAMIC for a in hw} if t.dim() == 4 else {}
                                                          for t, hw in zip(example_inputs, axes)))
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
    step = step_for("onnx", request.precision)
    args = (request.module, request.example_inputs)
    names = (request.input_names, request.output_names, request.dynamic_hw,
             [p is not None for p in request.pixels()[0]])
    if step.apply is None:
        write_onnx(*args, path, *names)
        return {}
    with tempfile.TemporaryDirectory(prefix="edgeport-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        write_onnx(*args, fp32, *names)
        try:
            with captured_output():
                return {"tool": step.tool, **step.apply(fp32, path, request.calibration,
                                                          keep=request.keep_float)}
        except Exception as exc:
            raise export_error(f"onnxruntime {request.precision}", exc) from exc


def _bindings(request: ExportRequest, proto: ModelProto) -> tuple[tuple, tuple]:
    """Read from the file: shapes (dynamic dims as -1), layouts and element types, with the pixel encodings."""
    import onnx

    def read(values: Iterable[ValueInfoProto], names: Sequence[str], encs: tuple, expected: Sequence[tuple]) -> tuple:
        by_name = {v.name: v for v in values}
        bindings = []
        for name, enc, want in zip(names, encs, expected):
            t = by_name[name].type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim) or tuple(want)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
            bindings.append(TensorBinding(name, name, shape, "NHWC" if enc is not None else "NCHW", dtype, enc))
        return tuple(bindings)
    ins, outs = request.pixels()
    out_shapes = [(s[0], s[2], s[3], s[1]) if e is not None else s for s, e in zip(request.output_shapes, outs)]
    return (read(proto.graph.input, request.input_names, ins, [tuple(t.shape) for t in request.example_inputs]),
            read(proto.graph.output, request.output_names, outs, out_shapes))


class OnnxExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        import onnx
        import torch

        if request.image_io:
            request = pixel_request(request, *request.pixels(), nhwc_uint8=True)
        path = request.work_dir / f"{request.stem}.onnx"
        recipe = _write(request, path)
        proto = onnx.load(str(path), load_external_data=False)
        if request.about:
            onnx.save(with_onnx_metadata(proto, request.about), str(path))
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ExportError(f"the written ONNX file does not pass onnx.checker: {exc}") from exc
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        inputs, outputs = _bindings(request, proto)
        versions = {"torch": torch.__version__, "onnx": onnx.__version__}
        if recipe:
            import onnxruntime

            versions["onnxruntime"] = onnxruntime.__version__
        return ArtifactRecord(
            format="onnx", export_precision=request.precision, route="torch.onnx-dynamo",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=inputs, outputs=outputs,
            details={"opset": opset, "ir_version": proto.ir_version, "dynamic_hw": request.dynamic_hw,
                     "nodes": len(proto.graph.node), **({"recipe": recipe} if recipe else {})},
            versions=versions,
            warnings=tuple(f"{len(kept)} node(s) kept float: constant on every calibration input ({', '.join(kept[:4])})"
                           for kept in [recipe.get("constant_float_nodes") or []] if kept),
        )


FORMAT = Format(
    name="onnx", label="ONNX", exporter=OnnxExporter(), open_runtime=OnnxRuntimeRunner,
    recipe_module="edgeport.quantize.onnx_recipes", channel_axis=1, read_tensors=onnx_tensors,
    tensors_engine="onnxruntime, all tensors as outputs",
    unit_kind="ONNX nodes", colour=(66, 133, 244), converter="torch.onnx", row_timeout_s=600.0,
    preload=("onnx", "onnxruntime"))
