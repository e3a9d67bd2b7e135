"""ExecuTorch: torch.export -> to_edge_transform_and_lower with the XNNPACK partitioner -> a .pte program.

w8a8 quantizes the module with ExecuTorch's XNNPACK quantizer (PT2E) before export, calibrated on the same
photos as every other format. Ops XNNPACK does not take run on ExecuTorch's portable kernels: the manifest
lists them, and a model that does not lower at all gets a failed row naming the op.
"""
from __future__ import annotations

from dataclasses import replace
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from edgeport.exporters.base import Exporter, ExportRequest, export_error
from edgeport.exporters.formats import Format
from edgeport.exporters.image_io import pixel_request, uint8_bindings
from edgeport.quantize.steps import step_for
from edgeport.runtimes.artifact import ArtifactRecord, file_records
from edgeport.runtimes.base import captured_output
from edgeport.runtimes.executorch_runner import ExecuTorchRunner

if TYPE_CHECKING:
    from executorch.exir import EdgeProgramManager
    from torch import nn


def _lowered(request: ExportRequest, module: nn.Module) -> EdgeProgramManager:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        with captured_output():
            program = torch.export.export(module, request.example_inputs)
            return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    except Exception as exc:
        raise export_error("ExecuTorch lowering", exc) from exc


def delegation_summary(edge: EdgeProgramManager) -> dict[str, Any]:
    """How much of the graph XNNPACK took; the ops left to ExecuTorch's portable kernels, by type."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    outside = {b.op_type: b.non_delegated for b in info.delegation_by_operator.values()
               if b.non_delegated and b.op_type not in ("getitem", "output", "placeholder")}
    return {"xnnpack_subgraphs": info.num_delegated_subgraphs, "delegated_nodes": info.num_delegated_nodes,
            "undelegated_ops": outside}


def describe_delegation(summary: dict[str, Any]) -> str:
    ops = ", ".join(f"{k} x{v}" for k, v in sorted(summary["undelegated_ops"].items(), key=lambda kv: -kv[1]))
    if not summary["xnnpack_subgraphs"]:
        return "XNNPACK took no op: everything runs on ExecuTorch's portable kernels"
    parts = f"{summary['xnnpack_subgraphs']} XNNPACK subgraph{'s' if summary['xnnpack_subgraphs'] > 1 else ''}"
    return parts + (f"; left on portable kernels: {ops}" if ops else "")


class ExecuTorchExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        step = step_for("executorch", request.precision)
        ins, outs = request.pixels()
        in_shapes = [tuple(t.shape) for t in request.example_inputs]   # NCHW, before any image wrapping
        recipe: dict[str, Any] = {}
        if step.apply is not None:   # quantized in contract values; the pixel conversion stays float around it
            try:
                with captured_output():
                    request = replace(request, module=step.apply(request.module, request.example_inputs,
                                                                 request.calibration_batches(),
                                                                 keep=request.keep_float))
            except Exception as exc:
                raise export_error(f"ExecuTorch {step.tool}", exc) from exc
            recipe = {"tool": step.tool, "weights": "int8 per channel", "activations": "int8 per tensor, calibrated",
                      "io": "uint8 images" if request.image_io else "float32",
                      "calibration_samples": len(request.calibration),
                      **getattr(request.module, "meta", {}).get("edgeport_recipe", {}),
                      **({"float_modules": list(request.keep_float)} if request.keep_float else {})}
        if request.image_io:
            request = pixel_request(request, ins, outs, nhwc_uint8=True)
        edge = _lowered(request, request.module)
        delegation = delegation_summary(edge)
        path = request.work_dir / f"{request.stem}.pte"
        try:
            with captured_output():
                path.write_bytes(edge.to_executorch().buffer)
        except Exception as exc:
            raise export_error("ExecuTorch to_executorch", exc) from exc
        notes = ((describe_delegation(delegation),) if delegation["undelegated_ops"] else ()) + (
            ("ExecuTorch artifacts are fixed-shape here: dynamic H/W was not exported",) if request.dynamic_hw else ())
        return ArtifactRecord(
            format="executorch", export_precision=request.precision, route="torch.export+executorch-xnnpack",
            main_file=path.name, files=file_records(request.work_dir),
            inputs=uint8_bindings(request.input_names, in_shapes, ins),
            outputs=uint8_bindings(request.output_names, request.output_shapes, outs),
            details={"backend": "XnnpackBackend", "delegates": ["XnnpackBackend"], "delegation": delegation,
                     "delegation_summary": describe_delegation(delegation), "fixed_shape": True,
                     **({"recipe": recipe} if recipe else {})},
            versions={"torch": version("torch"), "executorch": version("executorch")}, warnings=notes,
        )


FORMAT = Format(
    name="executorch", label="ExecuTorch", exporter=ExecuTorchExporter(), open_runtime=ExecuTorchRunner,
    recipe_module="edgeport.quantize.executorch_recipes", channel_axis=1,
    unit_kind="ExecuTorch ops", colour=(150, 60, 170), converter="executorch.exir",
    row_timeout_s=1200.0, preload=("executorch.exir",))
