"""Core ML: torch.export -> run_decompositions -> coremltools, as an mlprogram .mlpackage.

jit.trace is not used: it fails on any forward doing arithmetic on x.shape. I/O stay float32 in every
recipe (an FP16 program casts inside), so an app's interface does not change with the recipe.
"""
from __future__ import annotations

from typing import Any

from exporters.base import Exporter, ExportRequest, export_error, nchw_bindings
from exporters.coreml_package import make_reproducible
from exporters.formats import Format
from runtimes.artifact import ArtifactRecord, file_records
from runtimes.base import captured_output
from runtimes.coreml import coreml_latency_unavailable, coreml_tensors, import_coremltools, open_coreml

DEPLOYMENT_TARGET = "iOS16"
DYNAMIC_HW_RANGE = (16, 2048)


def _exported_program(request: ExportRequest) -> Any:
    import torch

    dynamic_shapes = None
    if request.dynamic_hw:
        lo, hi = DYNAMIC_HW_RANGE
        dim = torch.export.Dim
        dynamic_shapes = tuple({2: dim("height", min=lo, max=hi), 3: dim("width", min=lo, max=hi)}
                               if t.dim() == 4 else {} for t in request.example_inputs)
    try:
        with captured_output():
            return torch.export.export(request.module, request.example_inputs,
                                       dynamic_shapes=dynamic_shapes).run_decompositions({})
    except Exception as exc:
        raise export_error("torch.export", exc) from exc


def _input_types(ct: Any, request: ExportRequest) -> list[Any]:
    import numpy as np

    types = []
    for name, tensor in zip(request.input_names, request.example_inputs):
        shape = list(tensor.shape)
        if request.dynamic_hw and tensor.dim() == 4:
            lo, hi = DYNAMIC_HW_RANGE
            shape[2], shape[3] = ct.RangeDim(lo, hi, default=shape[2]), ct.RangeDim(lo, hi, default=shape[3])
        types.append(ct.TensorType(name=name, shape=ct.Shape(shape), dtype=np.float32))
    return types


def _convert(ct: Any, request: ExportRequest, compute: str) -> Any:
    import numpy as np

    program = _exported_program(request)
    try:
        with captured_output():
            return ct.convert(
                program, convert_to="mlprogram", inputs=_input_types(ct, request),
                outputs=[ct.TensorType(name=n, dtype=np.float32) for n in request.output_names],
                compute_precision=ct.precision.FLOAT16 if compute == "fp16" else ct.precision.FLOAT32,
                minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
            )
    except Exception as exc:
        raise export_error("coremltools.convert", exc) from exc


class CoreMLExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        import torch

        from quantize.steps import step_for

        ct = import_coremltools()
        step = step_for("coreml", request.precision)
        compute = step.options.get("compute_precision", "fp32")
        mlmodel = _convert(ct, request, compute)
        recipe: dict[str, Any] = {}
        if step.apply is not None:
            try:
                with captured_output():
                    mlmodel, done = step.apply(mlmodel, request.calibration)
            except Exception as exc:
                raise export_error(f"coremltools.optimize {request.precision}", exc) from exc
            recipe = {"tool": step.tool, **done}
        mlmodel.short_description = f"{request.stem} ({request.precision}) exported by edgeport"
        path = request.work_dir / f"{request.stem}.mlpackage"
        with captured_output():
            mlmodel.save(str(path))
        make_reproducible(path)
        in_shapes = [tuple(t.shape) for t in request.example_inputs]
        return ArtifactRecord(
            format="coreml", export_precision=request.precision, route="torch.export+coremltools",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=nchw_bindings(request.input_names, in_shapes, request.dynamic_hw),
            outputs=nchw_bindings(request.output_names, request.output_shapes, request.dynamic_hw),
            details={"pipeline": "torch.export -> run_decompositions -> coremltools.convert (mlprogram)",
                     "compute_precision": "FLOAT16" if compute == "fp16" else "FLOAT32",
                     "minimum_deployment_target": step.options.get("minimum_deployment_target", DEPLOYMENT_TARGET),
                     **({"recipe": recipe} if recipe else {}),
                     "specification_version": mlmodel.get_spec().specificationVersion,
                     "dynamic_hw": list(DYNAMIC_HW_RANGE) if request.dynamic_hw else False},
            versions={"torch": torch.__version__, "coremltools": ct.__version__},
        )


FORMAT = Format(
    name="coreml", label="Core ML", exporter=CoreMLExporter(), open_runtime=open_coreml,
    recipe_module="quantize.coreml_recipes", channel_axis=1, read_tensors=coreml_tensors,
    tensors_engine="edgeport MIL evaluator", default_recipes=("fp32", "fp16"),
    latency_unavailable=coreml_latency_unavailable,
)
