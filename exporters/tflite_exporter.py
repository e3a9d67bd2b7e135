"""TFLite: litert-torch first; onnx2tf (ONNX -> SavedModel -> .tflite, in its own bounded process) when
litert-torch fails.

TFLite artifacts are fixed-shape (dynamic H/W failed on both routes) and their layouts differ by route:
each binding's layout is read from the converted file, never assumed.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.exporters.base import (Exporter, ExportError, ExportRequest, detect_layout, export_error, failing_op,
                                     run_converter)
from edgeport.exporters.formats import Format
from edgeport.exporters.image_io import image_bindings, pixel_request
from edgeport.exporters.onnx_exporter import write_onnx
from edgeport.exporters.tflite_boundary import with_float_io
from edgeport.exporters.tflite_metadata import write_tflite_metadata
from edgeport.quantize.steps import step_for
from edgeport.runtimes.artifact import ArtifactRecord, TensorBinding, file_records
from edgeport.runtimes.base import captured_output
from edgeport.runtimes.litert import LiteRTRunner, open_interpreter, tflite_tensors, xnnpack_delegation

if TYPE_CHECKING:
    from litert_torch.quantize.quant_config import QuantConfig
    from torch import nn

    from edgeport.quantize.steps import RecipeStep
    from edgeport.runtimes.xnnpack_delegation import Delegation

ROUTES = ("litert-torch", "onnx2tf")
# onnx2tf loads this file from its working directory, and downloads it when absent (which fails offline).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _convert_litert_torch(request: ExportRequest, path: Path, step: RecipeStep) -> dict[str, Any]:
    """The module as is; or, for a convert-stage recipe (w8a8), the quantized module the step returns, with
    float32 put back around any input or output the converter made int8. Returns what the recipe did beyond
    the conversion (that boundary, a fine-tune's record)."""
    quantizing = step.stage == "convert" and step.apply is not None
    try:
        with captured_output():
            import litert_torch

            module, config = request.module, None
            if quantizing:
                module, config = step.apply(request.module, request.example_inputs, request.calibration_batches(),
                                            keep=request.keep_float)
            litert_torch.convert(module, request.example_inputs, quant_config=config).export(str(path))
    except Exception as exc:
        raise export_error(f"litert-torch PT2E {step.precision}" if quantizing else "litert-torch", exc) from exc
    if not quantizing:
        return {}
    ins, outs = request.pixels()
    data, changed = with_float_io(path.read_bytes(), [e is None for e in ins], [e is None for e in outs])
    if changed:
        path.write_bytes(data)
    done = dict(getattr(module, "meta", {}).get("edgeport_recipe", {}))   # a fine-tune's record (QAT)
    return {**done, "float_boundary": changed} if changed else done


def _onnx2tf_samples(request: ExportRequest) -> np.ndarray:
    """20 NHWC 128x128 RGB images in [0, 1] from the parity photos, in the file layout onnx2tf expects."""
    from PIL import Image

    images = []
    for sample in request.sample_inputs:
        arr = next(iter(sample.values()))
        if arr.ndim == 4 and arr.shape[1] == 3:
            hwc = np.clip(arr[0].transpose(1, 2, 0), 0, 1)
            img = Image.fromarray((hwc * 255).astype(np.uint8)).resize((128, 128), Image.Resampling.BICUBIC)
            images.append(np.asarray(img, dtype=np.float32) / 255.0)
    if not images:
        images = [np.random.default_rng(0).uniform(0, 1, (128, 128, 3)).astype(np.float32)]
    return np.stack([images[i % len(images)] for i in range(20)])


def _convert_onnx2tf(request: ExportRequest, path: Path, step: RecipeStep) -> dict[str, Any]:
    if step.stage == "convert" and step.apply is not None and "onnx2tf_args" not in step.options:
        raise ExportError(f"the onnx2tf route cannot apply {step.precision} (it needs the litert-torch route)")
    if request.keep_float and "onnx2tf_args" in step.options:
        raise ExportError("onnx2tf's full-integer route cannot keep chosen layers float (mixed precision needs "
                          "the litert-torch route)")
    with tempfile.TemporaryDirectory(prefix="edgeport-onnx2tf-") as tmp:
        work = Path(tmp)
        onnx_path = work / "model.onnx"
        write_onnx(request.module, request.example_inputs, onnx_path, request.input_names, request.output_names,
                   dynamic_hw=False)
        np.save(work / ONNX2TF_SAMPLE_FILE, _onnx2tf_samples(request))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, "-c", "import onnx2tf; onnx2tf.main()", "-i", str(onnx_path), "-o", str(work / "out"),
               "-n", "-coion"]
        produced = work / "out" / "model_float32.tflite"
        if "onnx2tf_args" in step.options:   # the TF converter's full-integer quantization, float32 I/O kept
            cmd += step.options["onnx2tf_args"](request.calibration, request.input_names, work)
            produced = work / "out" / "model_integer_quant.tflite"
        proc = run_converter(cmd, work, env, request.converter_timeout, "onnx2tf")
        if proc.returncode != 0 or not produced.is_file():
            log = (proc.stderr + proc.stdout).strip().splitlines()
            reason = next((ln for ln in reversed(log) if "Error" in ln or "error" in ln), log[-1] if log else "")
            raise ExportError(f"onnx2tf failed (exit {proc.returncode}): {reason.strip()[:300]}",
                              op=failing_op("\n".join(log)))
        produced.replace(path)
    return {}


def _require_contract_io(path: Path, request: ExportRequest) -> None:
    """I/O are float32, or uint8 for compiled-in images, in every recipe; PT2E sometimes folds the first
    quantize into the model input (an int8 tensor), which would change what an app must feed."""
    interp = open_interpreter(path, delegate=False)
    for details, encs in zip((interp.get_input_details(), interp.get_output_details()), request.pixels()):
        got = sorted(np.dtype(d["dtype"]).name for d in details)
        want = sorted("uint8" if e is not None else "float32" for e in encs)
        if got != want:
            raise ExportError(f"converter made I/O types {got}; the contract is {want}")


def _convert(requests: dict[str, ExportRequest], path: Path,
             step: RecipeStep) -> tuple[str, list[str], dict[str, Any]]:
    """The first route that works, each with its own request; returns it, why the earlier ones failed, and
    what the route's recipe did beyond converting."""
    wanted = requests["litert-torch"].options.get("tflite_route", "auto")
    if wanted not in ("auto", *ROUTES):
        raise ExportError(f"unknown TFLite route {wanted!r}; use auto, {', '.join(ROUTES)}")
    failures: list[str] = []
    last: ExportError | None = None
    for route in ROUTES if wanted == "auto" else (wanted,):
        try:
            convert = _convert_litert_torch if route == "litert-torch" else _convert_onnx2tf
            extra = convert(requests[route], path, step)
            _require_contract_io(path, requests[route])
            return route, failures, extra
        except ExportError as exc:
            failures.append(str(exc))
            last = exc
            path.unlink(missing_ok=True)
    raise ExportError("; then ".join(failures), op=last.op if last else None)


def _plain_name(name: str) -> str:
    """'serving_default_image:0' -> 'image' (onnx2tf with -coion); litert-torch gives 'serving_default_args_0'."""
    name = re.sub(r":\d+$", "", name)
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def _order_by_names(details: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The interpreter's tensors in contract order, matched by name or by litert-torch's positional names."""
    if len(details) == 1:
        return details
    by_name = {_plain_name(d["name"]): d for d in details}
    if all(n in by_name for n in names):
        return [by_name[n] for n in names]
    positional = {}
    for d in details:   # args_0, output_1 (litert-torch); PartitionedCall:1 (a TF function's output index)
        match = (re.fullmatch(r"(?:args|output)_(\d+)(?:_output)?", _plain_name(d["name"]))
                 or re.fullmatch(r"[A-Za-z_]+:(\d+)", d["name"]))
        if match:
            positional[int(match.group(1))] = d
    if sorted(positional) == list(range(len(names))):
        return [positional[i] for i in range(len(names))]
    raise ExportError(f"cannot tell which TFLite tensor is which: {[d['name'] for d in details]} for {list(names)}")


def _bindings(names: tuple[str, ...], details: list[dict[str, Any]], shapes: list[tuple[int, ...]]) -> tuple:
    if len(details) != len(names):
        raise ExportError(f"TFLite model has {len(details)} tensors where PyTorch has {len(names)}: {list(names)}")
    return tuple(TensorBinding(n, d["name"], tuple(int(s) for s in d["shape"]), detect_layout(d["shape"], s),
                               np.dtype(d["dtype"]).name)
                 for n, d, s in zip(names, _order_by_names(details, names), shapes))


def _versions(route: str) -> dict[str, str]:
    from importlib.metadata import version

    names = ["torch", "ai-edge-litert", "ai-edge-quantizer"] + (["litert-torch"] if route == "litert-torch"
                                                                else ["onnx", "onnx2tf", "tensorflow-cpu"])
    return {n: version(n) for n in names}


def _rewrite(step: RecipeStep, src: Path, final: Path, calibration: Sequence[Mapping[str, np.ndarray]],
             keep: tuple[str, ...]) -> dict[str, Any]:
    """An artifact-stage recipe (fp16, w8) applied to the fp32 file."""
    try:
        with captured_output():
            return {"tool": step.tool, **step.apply(src, final, calibration, keep=keep)}
    except Exception as exc:
        raise export_error(f"ai-edge-quantizer {step.precision}", exc) from exc
    finally:
        src.unlink(missing_ok=True)


def _notes(recipe: dict[str, Any], delegation: Delegation, dynamic_hw: bool, route: str,
           failures: list[str]) -> list[str]:
    notes = [f"w8 fell back to weight-only int8 ({recipe['fallback_from']})"] if "fallback_from" in recipe else []
    if delegation.split:
        notes.append(delegation.describe())
    if dynamic_hw:
        notes.append("TFLite artifacts are fixed-shape: dynamic H/W is not supported by either route")
    if failures:
        notes.append(f"fell back to {route}: {failures[0]}")
    return notes


def _quantized_inside_pixels(step: RecipeStep, request: ExportRequest,
                             plain: ExportRequest) -> tuple[RecipeStep, ExportRequest]:
    """Run the step on the float module with float calibration (as ExecuTorch's route does); the pixel
    wrapper then goes around the quantized program, and the converter gets the step's config unchanged."""
    try:
        with captured_output():
            module, config = step.apply(plain.module, plain.example_inputs, plain.calibration_batches(),
                                        keep=plain.keep_float)
    except Exception as exc:
        raise export_error(f"litert-torch PT2E {step.precision}", exc) from exc
    record = getattr(module, "meta", {}).get("edgeport_recipe", {})

    def already_applied(wrapped: nn.Module, *_: object, **__: object) -> tuple[nn.Module, QuantConfig]:
        wrapped.meta = {"edgeport_recipe": record}   # where a quantized program keeps the fine-tune's record
        return wrapped, config
    return replace(step, apply=already_applied), replace(request, module=module)


class TFLiteExporter(Exporter):
    def export(self, request: ExportRequest) -> ArtifactRecord:
        step = step_for("tflite", request.precision)
        in_shapes = [tuple(t.shape) for t in request.example_inputs]   # NCHW, before any image wrapping
        # onnx2tf reads every 4-D input as NCHW and would transpose a uint8 NHWC image again: on that route
        # the artifact keeps float32 tensor I/O, and its bindings and a warning say so
        plain = replace(request, input_pixels=(), output_pixels=())
        if request.image_io and step.options.get("float_inside_pixels"):
            step, request = _quantized_inside_pixels(step, request, plain)
        wrapped = pixel_request(request, *request.pixels(), nhwc_uint8=True) if request.image_io else plain
        final = request.work_dir / f"{request.stem}.tflite"
        rewrite = step.stage == "artifact"
        path = request.work_dir / ".fp32.tflite" if rewrite else final
        route, failures, extra = _convert({"litert-torch": wrapped, "onnx2tf": plain}, path, step)
        lost_images = request.image_io and route == "onnx2tf"
        request = wrapped if route == "litert-torch" else plain
        ins, outs = request.pixels()
        recipe: dict[str, Any] = _rewrite(step, path, final, request.calibration, request.keep_float) if rewrite else {}
        if step.stage == "convert" and step.apply is not None:
            recipe = {"tool": step.tool if route == "litert-torch" else step.options["onnx2tf_tool"],
                      "weights": "int8 per channel", "activations": "int8 per tensor, calibrated",
                      "io": "uint8 images" if request.image_io else "float32",
                      "calibration_samples": len(request.calibration),
                      **extra,
                      **({"float_modules": list(request.keep_float)} if request.keep_float else {})}
        if request.about:
            try:
                write_tflite_metadata(final, request.about, (request.input_names, request.output_names), (ins, outs))
            except Exception as exc:
                raise export_error("TFLite metadata", exc) from exc
        delegation = xnnpack_delegation(final)
        interp = open_interpreter(final, delegate=False)
        return ArtifactRecord(
            format="tflite", export_precision=request.precision, route=route, main_file=final.name,
            files=file_records(request.work_dir),
            inputs=image_bindings(_bindings(request.input_names, interp.get_input_details(), in_shapes), ins),
            outputs=image_bindings(_bindings(request.output_names, interp.get_output_details(),
                                             list(request.output_shapes)), outs),
            details={"fallback_from": failures, "fixed_shape": True, "delegation": delegation.to_dict(),
                     "delegation_summary": delegation.describe(), **({"recipe": recipe} if recipe else {})},
            versions=_versions(route), warnings=tuple(_notes(recipe, delegation, request.dynamic_hw, route, failures)
                                                      + (["onnx2tf route: image I/O not compiled in (float32 tensor "
                                                          "I/O, NHWC); litert-torch keeps it"] if lost_images else [])),
        )


FORMAT = Format(
    name="tflite", label="TFLite", exporter=TFLiteExporter(), open_runtime=LiteRTRunner,
    recipe_module="edgeport.quantize.tflite_recipes", channel_axis=-1, read_tensors=tflite_tensors,
    tensors_engine="LiteRT interpreter, preserve_all_tensors, no delegate",
    unit_kind="TFLite ops (by output tensor)", colour=(234, 134, 0),
    converter="litert-torch or onnx2tf", row_timeout_s=1200.0, preload=("litert_torch", "ai_edge_litert.interpreter"))
