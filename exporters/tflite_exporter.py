"""TFLite: litert-torch first; onnx2tf (ONNX -> SavedModel -> .tflite) when litert-torch fails.

TFLite artifacts are fixed-shape (dynamic H/W failed on both routes) and their layouts differ by route:
each binding's layout is read from the converted file, never assumed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import (ArtifactRecord, ExportError, Exporter, ExportRequest, TensorBinding, captured_output,
                            detect_layout, failing_op, file_records, short_message)
from exporters.onnx_exporter import write_onnx
from quantize.tflite_recipes import POST_CONVERSION

ROUTES = ("litert-torch", "onnx2tf")
# onnx2tf loads this file from its working directory, and downloads it when absent (which fails offline).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _convert_litert_torch(request: ExportRequest, path: Path) -> None:
    """fp32 from the module as is; w8a8 through the PT2E quantizer, calibrated on request.calibration."""
    with captured_output():
        try:
            import litert_torch

            module, config = request.module, None
            if request.precision == "w8a8":
                from quantize.tflite_recipes import pt2e_int8_module

                batches = [tuple(torch_tensor(c[n]) for n in request.input_names) for c in request.calibration]
                module, config = pt2e_int8_module(module, request.example_inputs, batches)
            litert_torch.convert(module, request.example_inputs, quant_config=config).export(str(path))
        except Exception as exc:
            step = "litert-torch PT2E int8" if request.precision == "w8a8" else "litert-torch"
            raise ExportError(f"{step} failed: {short_message(exc)}", op=failing_op(str(exc))) from exc


def torch_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(array))


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


def _convert_onnx2tf(request: ExportRequest, path: Path) -> None:
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
        if request.precision == "w8a8":   # TF converter's full-integer quantization, float32 I/O kept
            from quantize.tflite_recipes import onnx2tf_calibration_args

            cmd += ["-oiqt", "-qt", "per-channel",
                    *onnx2tf_calibration_args(request.calibration, request.input_names, work)]
            produced = work / "out" / "model_integer_quant.tflite"
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not produced.is_file():
            log = (proc.stderr + proc.stdout).strip().splitlines()
            reason = next((ln for ln in reversed(log) if "Error" in ln or "error" in ln), log[-1] if log else "")
            raise ExportError(f"onnx2tf failed (exit {proc.returncode}): {reason.strip()[:300]}",
                              op=failing_op("\n".join(log)))
        produced.replace(path)


def _bindings(request: ExportRequest, path: Path) -> tuple[tuple[TensorBinding, ...], tuple[TensorBinding, ...]]:
    """Match the interpreter's tensors to the contract by order and read each one's layout from its shape."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != len(request.input_names) or len(outs) != len(request.output_names):
        raise ExportError(f"TFLite model has {len(ins)} inputs / {len(outs)} outputs, "
                          f"PyTorch has {len(request.input_names)} / {len(request.output_names)}")
    # onnx2tf keeps the ONNX names with -coion; litert-torch names them args_N / output_N in order.
    ins = _order_by_names(ins, request.input_names)
    outs = _order_by_names(outs, request.output_names)
    in_shapes = [tuple(t.shape) for t in request.example_inputs]
    inputs = tuple(TensorBinding(n, d["name"], tuple(int(s) for s in d["shape"]), detect_layout(d["shape"], s),
                                 np.dtype(d["dtype"]).name)
                   for n, d, s in zip(request.input_names, ins, in_shapes))
    outputs = tuple(TensorBinding(n, d["name"], tuple(int(s) for s in d["shape"]), detect_layout(d["shape"], s),
                                  np.dtype(d["dtype"]).name)
                    for n, d, s in zip(request.output_names, outs, request.output_shapes))
    return inputs, outputs


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
    for d in details:
        match = re.fullmatch(r"(?:args|output)_(\d+)(?:_output)?", _plain_name(d["name"]))
        if match:
            positional[int(match.group(1))] = d
    if sorted(positional) == list(range(len(names))):
        return [positional[i] for i in range(len(names))]
    raise ExportError(f"cannot tell which TFLite tensor is which: {[d['name'] for d in details]} for {list(names)}")


class TFLiteExporter(Exporter):
    format = "tflite"
    precisions = ("fp32", "fp16", "w8", "w8a8")

    def export(self, request: ExportRequest) -> ArtifactRecord:
        wanted = request.options.get("tflite_route", "auto")
        if wanted not in ("auto", *ROUTES):
            raise ExportError(f"unknown TFLite route {wanted!r}; use auto, {', '.join(ROUTES)}")
        if request.precision == "w8a8" and not request.calibration:
            raise ExportError("w8a8 needs calibration inputs")
        final = request.work_dir / f"{request.stem}.tflite"
        post = request.precision in POST_CONVERSION     # ai-edge-quantizer on the fp32 file
        path = request.work_dir / ".fp32.tflite" if post else final
        routes = ROUTES if wanted == "auto" else (wanted,)
        failures: list[str] = []
        last: ExportError | None = None
        for route in routes:
            try:
                (_convert_litert_torch if route == "litert-torch" else _convert_onnx2tf)(request, path)
                _require_float_io(path)
                break
            except ExportError as exc:
                failures.append(str(exc))
                last = exc
                path.unlink(missing_ok=True)
        else:
            raise ExportError("; then ".join(failures), op=last.op if last else None)
        recipe: dict[str, Any] = {}
        if post:
            from quantize.tflite_recipes import compress_tflite_file

            try:
                with captured_output():
                    recipe = compress_tflite_file(request.precision, path, final)
            except Exception as exc:
                raise ExportError(f"ai-edge-quantizer {request.precision} failed: {short_message(exc)}",
                                  op=failing_op(str(exc))) from exc
            finally:
                path.unlink(missing_ok=True)
        elif request.precision == "w8a8":
            recipe = ({"tool": "litert-torch PT2E (torchao prepare_pt2e/convert_pt2e)", "weights": "int8 per channel",
                       "activations": "int8 per tensor, calibrated"} if route == "litert-torch" else
                      {"tool": "onnx2tf -oiqt (TF converter full-integer)", "weights": "int8 per channel",
                       "activations": "int8, calibrated", "io": "float32"})
            recipe["calibration_samples"] = len(request.calibration)
        from exporters.tflite_delegation import xnnpack_delegation

        delegation = xnnpack_delegation(final)
        warnings = [f"w8 fell back to weight-only int8 ({recipe['fallback_from']})"] if "fallback_from" in recipe else []
        if delegation.split:
            warnings.append(delegation.describe())
        if request.dynamic_hw:
            warnings.append("TFLite artifacts are fixed-shape: dynamic H/W is not supported by either route")
        if failures:
            warnings.append(f"fell back to {route}: {failures[0]}")
        inputs, outputs = _bindings(request, final)
        return ArtifactRecord(
            format=self.format, precision=request.precision, route=route, main_file=final.name,
            files=file_records(request.work_dir), inputs=inputs, outputs=outputs,
            details={"fallback_from": failures, "fixed_shape": True, "delegation": delegation.to_dict(),
                     "delegation_summary": delegation.describe(), **({"recipe": recipe} if recipe else {})},
            versions=_versions(route), warnings=tuple(warnings),
        )


def _require_float_io(path: Path) -> None:
    """The contract is float32 in and out for every recipe; PT2E sometimes folds the first quantize into the
    model input (int8 image), which would change what an app must feed."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    for d in interp.get_input_details() + interp.get_output_details():
        if np.dtype(d["dtype"]) != np.float32:
            raise ExportError(f"converter made tensor {d['name']} {np.dtype(d['dtype']).name}; the I/O contract is "
                              "float32")


def _versions(route: str) -> dict[str, str]:
    from importlib.metadata import version

    names = ["torch", "ai-edge-litert", "ai-edge-quantizer"] + (["litert-torch"] if route == "litert-torch"
                                                                else ["onnx", "onnx2tf", "tensorflow-cpu"])
    return {n: version(n) for n in names}


EXPORTER = TFLiteExporter()
