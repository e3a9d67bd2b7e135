"""Core ML: torch.export -> run_decompositions -> coremltools, as an mlprogram .mlpackage.

jit.trace is not used: it fails on any forward doing arithmetic on x.shape. I/O stay float32 in both
precisions (an FP16 program casts inside), so an app's interface does not change with the precision.
"""
from __future__ import annotations

from exporters.base import (ArtifactRecord, ExportError, Exporter, ExportRequest, TensorBinding, captured_output,
                            failing_op, file_records, short_message)

DEPLOYMENT_TARGET = "iOS16"
DYNAMIC_HW_RANGE = (16, 2048)


class CoreMLExporter(Exporter):
    format = "coreml"
    precisions = ("fp32", "fp16", "w8", "w8a8", "palettize4", "palettize6", "sparse")
    default_precisions = ("fp32", "fp16")

    def export(self, request: ExportRequest) -> ArtifactRecord:
        if request.precision not in self.precisions:
            raise ExportError(f"Core ML export supports {', '.join(self.precisions)}, not {request.precision}")
        import numpy as np
        import torch

        with captured_output():
            import coremltools as ct

        dynamic_shapes = None
        if request.dynamic_hw:
            dim = torch.export.Dim
            dynamic_shapes = tuple({2: dim("height", min=DYNAMIC_HW_RANGE[0], max=DYNAMIC_HW_RANGE[1]),
                                    3: dim("width", min=DYNAMIC_HW_RANGE[0], max=DYNAMIC_HW_RANGE[1])}
                                   if t.dim() == 4 else {} for t in request.example_inputs)
        try:
            with captured_output():
                program = torch.export.export(request.module, request.example_inputs,
                                              dynamic_shapes=dynamic_shapes).run_decompositions({})
        except Exception as exc:
            raise ExportError(f"torch.export failed: {short_message(exc)}", op=failing_op(str(exc))) from exc

        def input_type(name: str, tensor: "torch.Tensor"):
            shape = list(tensor.shape)
            if request.dynamic_hw and tensor.dim() == 4:
                lo, hi = DYNAMIC_HW_RANGE
                shape[2] = ct.RangeDim(lo, hi, default=shape[2])
                shape[3] = ct.RangeDim(lo, hi, default=shape[3])
            return ct.TensorType(name=name, shape=ct.Shape(shape), dtype=np.float32)

        # int8 activations are quantized from an fp16 program, as Core ML runs them on device (coremltools'
        # activation passes expect fp16 scales)
        fp16 = request.precision in ("fp16", "w8a8")
        precision = ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32
        path = request.work_dir / f"{request.stem}.mlpackage"
        try:
            with captured_output():
                mlmodel = ct.convert(
                    program, convert_to="mlprogram",
                    inputs=[input_type(n, t) for n, t in zip(request.input_names, request.example_inputs)],
                    outputs=[ct.TensorType(name=n, dtype=np.float32) for n in request.output_names],
                    compute_precision=precision,
                    minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
                )
        except Exception as exc:
            raise ExportError(f"coremltools.convert failed: {short_message(exc)}", op=failing_op(str(exc))) from exc
        recipe: dict = {}
        if request.precision not in ("fp32", "fp16"):
            from quantize.coreml_recipes import compress_coreml

            try:
                with captured_output():
                    mlmodel, recipe = compress_coreml(request.precision, mlmodel, request.calibration)
            except Exception as exc:
                raise ExportError(f"coremltools.optimize {request.precision} failed: {short_message(exc)}",
                                  op=failing_op(str(exc))) from exc
        mlmodel.short_description = f"{request.stem} ({request.precision}) exported by edgeport"
        with captured_output():
            mlmodel.save(str(path))

        spec = mlmodel.get_spec()

        def binding(name: str, shape: tuple[int, ...]) -> TensorBinding:
            shown = (shape[0], shape[1], -1, -1) if request.dynamic_hw and len(shape) == 4 else shape
            return TensorBinding(name, name, tuple(shown), "NCHW")

        in_shapes = [tuple(t.shape) for t in request.example_inputs]
        return ArtifactRecord(
            format=self.format, precision=request.precision,
            route="torch.export+coremltools",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=tuple(binding(n, s) for n, s in zip(request.input_names, in_shapes)),
            outputs=tuple(binding(n, s) for n, s in zip(request.output_names, request.output_shapes)),
            details={"pipeline": "torch.export -> run_decompositions -> coremltools.convert (mlprogram)",
                     "compute_precision": precision.name if hasattr(precision, "name") else str(precision),
                     "minimum_deployment_target": recipe.pop("minimum_deployment_target", DEPLOYMENT_TARGET),
                     **({"recipe": recipe} if recipe else {}),
                     "specification_version": spec.specificationVersion,
                     "dynamic_hw": list(DYNAMIC_HW_RANGE) if request.dynamic_hw else False},
            versions={"torch": torch.__version__, "coremltools": ct.__version__},
        )


EXPORTER = CoreMLExporter()
