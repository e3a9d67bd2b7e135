"""Core ML: torch.export -> run_decompositions -> coremltools, as an mlprogram .mlpackage.

jit.trace is not used: it fails on any forward doing arithmetic on x.shape. Image I/O (exporters/image_io.py)
gives ImageType inputs and outputs; tensor I/O stays float32 in every recipe (an FP16 program casts inside),
so an app's interface does not change with the recipe.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeport.exporters.base import Exporter, ExportRequest, export_error, nchw_bindings
from edgeport.exporters.coreml_package import make_reproducible
from edgeport.exporters.coreml_torch_ops import (coreml_decompositions, explicit_pool_strides, float_clamp_bounds,
                                                 register_missing_torch_ops)
from edgeport.exporters.formats import Format
from edgeport.exporters.image_io import dynamic_shapes_for, image_bindings, pixel_request
from edgeport.exporters.metadata import apply_coreml_metadata
from edgeport.quantize.steps import step_for
from edgeport.runtimes.artifact import ArtifactRecord, file_records
from edgeport.runtimes.base import captured_output
from edgeport.runtimes.coreml import coreml_latency_unavailable, coreml_tensors, import_coremltools, open_coreml

if TYPE_CHECKING:
    from types import ModuleType

    from coremltools.converters.mil.input_types import ColorLayout, ImageType, Shape, TensorType
    from coremltools.converters.mil.mil.passes.defs.quantization import ComputePrecision, FP16ComputePrecision
    from coremltools.models import MLModel
    from torch.export import ExportedProgram

    from edgeport.runtimes.pixels import PixelEncoding

DEPLOYMENT_TARGET = "iOS16"
DYNAMIC_HW_RANGE = (16, 2048)


def _exported_program(request: ExportRequest) -> ExportedProgram:
    import torch

    dynamic_shapes = None
    if request.dynamic_hw:   # DYNAMIC hints, as the ONNX exporter: a named Dim over 16-2048 is refused for any net
        # whose layers tie sizes together (a U-Net's skips need multiples of 4), DYNAMIC lets torch.export decide
        lo, hi = DYNAMIC_HW_RANGE
        dim = torch.export.Dim
        dynamic_shapes = dynamic_shapes_for(request.module, tuple(
            {2: dim.DYNAMIC(min=lo, max=hi), 3: dim.DYNAMIC(min=lo, max=hi)} if t.dim() == 4 else {}
            for t in request.example_inputs))
    try:
        with captured_output():
            return torch.export.export(request.module, request.example_inputs,
                                       dynamic_shapes=dynamic_shapes).run_decompositions(coreml_decompositions())
    except Exception as exc:
        raise export_error("torch.export", exc) from exc


def _color_layout(ct: ModuleType, color: str) -> ColorLayout:
    return {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR, "GRAY": ct.colorlayout.GRAYSCALE}[color]


def _image_type(ct: ModuleType, name: str, shape: Shape, enc: PixelEncoding) -> ImageType:
    """ImageType's one scale and per-channel bias carry the normalisation when the std is uniform; otherwise
    the bias subtracts 255 x mean and the program's first op scales each channel (exporters/image_io.py)."""
    scale, bias = 1.0, [-255.0 * m for m in enc.mean]
    if enc.uniform_std:
        scale = 1.0 / (255.0 * enc.std[0])
        bias = [-m / s for m, s in zip(enc.mean, enc.std)]
    return ct.ImageType(name=name, shape=shape, scale=scale, bias=bias[0] if enc.channels == 1 else bias,
                        color_layout=_color_layout(ct, enc.color))


def _input_types(ct: ModuleType, request: ExportRequest) -> list[ImageType | TensorType]:
    import numpy as np

    types = []
    for name, tensor, enc in zip(request.input_names, request.example_inputs, request.pixels()[0]):
        shape = list(tensor.shape)
        if request.dynamic_hw and tensor.dim() == 4:
            lo, hi = DYNAMIC_HW_RANGE
            shape[2], shape[3] = ct.RangeDim(lo, hi, default=shape[2]), ct.RangeDim(lo, hi, default=shape[3])
        types.append(_image_type(ct, name, ct.Shape(shape), enc) if enc is not None
                     else ct.TensorType(name=name, shape=ct.Shape(shape), dtype=np.float32))
    return types


def _output_types(ct: ModuleType, request: ExportRequest) -> list[ImageType | TensorType]:
    import numpy as np

    return [ct.ImageType(name=n, color_layout=_color_layout(ct, enc.color)) if enc is not None
            else ct.TensorType(name=n, dtype=np.float32) for n, enc in zip(request.output_names, request.pixels()[1])]


def _compute_precision(ct: ModuleType, request: ExportRequest,
                       compute: str) -> ComputePrecision | FP16ComputePrecision:
    """FLOAT16 everywhere but the ops the mixed-precision search keeps at float32."""
    if compute != "fp16":
        return ct.precision.FLOAT32
    if not request.keep_float:
        return ct.precision.FLOAT16
    kept = frozenset(request.keep_float)
    return ct.transform.FP16ComputePrecision(op_selector=lambda op: op.name not in kept)


def _convert(ct: ModuleType, request: ExportRequest, compute: str) -> MLModel:
    register_missing_torch_ops()
    program = _exported_program(request)
    explicit_pool_strides(program)
    float_clamp_bounds(program)
    try:
        with captured_output():
            return ct.convert(
                program, convert_to="mlprogram", inputs=_input_types(ct, request), outputs=_output_types(ct, request),
                compute_precision=_compute_precision(ct, request, compute),
                minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
            )
    except Exception as exc:
        raise export_error("coremltools.convert", exc) from exc


class CoreMLExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        import torch

        ct = import_coremltools()
        if request.image_io:
            ins, outs = request.pixels()
            request = pixel_request(request, ins, outs, nhwc_uint8=False,
                                    scaled_in=tuple(e is not None and e.uniform_std for e in ins))
        step = step_for("coreml", request.precision)
        compute = step.options.get("compute_precision", "fp32")
        mlmodel = _convert(ct, request, compute)
        recipe: dict[str, Any] = {}
        if step.apply is not None:
            try:
                with captured_output():
                    mlmodel, done = step.apply(mlmodel, request.calibration,
                                               **({"keep": request.keep_float} if request.keep_float else {}))
            except Exception as exc:
                raise export_error(f"coremltools.optimize {request.precision}", exc) from exc
            recipe = {"tool": step.tool, **done}
        apply_coreml_metadata(mlmodel, {"summary": f"{request.stem} ({request.precision}) exported by edgeport",
                                        **request.about})
        path = request.work_dir / f"{request.stem}.mlpackage"
        with captured_output():
            mlmodel.save(str(path))
        make_reproducible(path)
        in_shapes = [tuple(t.shape) for t in request.example_inputs]
        return ArtifactRecord(
            format="coreml", export_precision=request.precision, route="torch.export+coremltools",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=image_bindings(nchw_bindings(request.input_names, in_shapes, request.dynamic_hw),
                                  request.pixels()[0]),
            outputs=image_bindings(nchw_bindings(request.output_names, request.output_shapes, request.dynamic_hw),
                                   request.pixels()[1]),
            details={"pipeline": "torch.export -> run_decompositions -> coremltools.convert (mlprogram)",
                     "compute_precision": "FLOAT16" if compute == "fp16" else "FLOAT32",
                     **({"float32_ops": list(request.keep_float)} if step.apply is None and request.keep_float
                        else {}),
                     "minimum_deployment_target": step.options.get("minimum_deployment_target", DEPLOYMENT_TARGET),
                     **({"recipe": recipe} if recipe else {}),
                     "specification_version": mlmodel.get_spec().specificationVersion,
                     "dynamic_hw": list(DYNAMIC_HW_RANGE) if request.dynamic_hw else False},
            versions={"torch": torch.__version__, "coremltools": ct.__version__},
        )


FORMAT = Format(
    name="coreml", label="Core ML", exporter=CoreMLExporter(), open_runtime=open_coreml,
    recipe_module="edgeport.quantize.coreml_recipes", channel_axis=1, read_tensors=coreml_tensors,
    tensors_engine="edgeport MIL evaluator", default_recipes=("fp32", "fp16"),
    latency_unavailable=coreml_latency_unavailable,
    unit_kind="MIL ops", colour=(52, 168, 83), converter="coremltools", row_timeout_s=1200.0,
    preload=("coremltools",))
