"""End to end on reduced configs: every format exported, checked in its real runtime, recorded atomically."""
import json
import math
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import nn

import pytest

from edgeport.export.isolation import run_export
from edgeport.export.plan import ExportPlan
from edgeport.runtimes.artifact import sha256_file
from edgeport.models.samples import photo_inputs
from edgeport.models.spec import ModelMetadata, ModelSpec, TensorContract

pytestmark = pytest.mark.e2e


def test_tiny_x4plus_passes_every_format_with_real_margins(tiny_export):
    out, summary = tiny_export
    rows = {(r.format, r.recipe): r for r in summary.rows}
    assert set(rows) == {("onnx", "fp32"), ("tflite", "fp32"), ("coreml", "fp32"), ("coreml", "fp16"),
                         ("executorch", "fp32")}
    for (fmt, precision), row in rows.items():
        assert row.status == "pass", row
        assert row.worst_psnr_db >= (60 if precision == "fp32" else 40), row
    assert "onnxruntime" in rows["onnx", "fp32"].engine
    assert "LiteRT" in rows["tflite", "fp32"].engine and "XNNPACK" in rows["tflite", "fp32"].engine
    assert "MIL evaluator" in rows["coreml", "fp32"].engine
    assert "ExecuTorch" in rows["executorch", "fp32"].engine and "XnnpackBackend" in rows["executorch", "fp32"].engine
    # fp16 is measurably lossy, fp32 nearly exact: the gates see real differences
    assert rows["coreml", "fp16"].worst_psnr_db < rows["coreml", "fp32"].worst_psnr_db
    assert summary.exit_code == 0


def test_manifest_records_files_versions_contract_source_and_parity(tiny_export):
    out, _ = tiny_export
    folder = out / "realesrgan-x4plus" / "tflite-fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == "edgeport.manifest/2"
    art = manifest["artifact"]
    for f in art["files"]:
        assert sha256_file(folder / f["path"]) == f["sha256"]
        assert (folder / f["path"]).stat().st_size == f["bytes"]
    assert art["route"] in ("litert-torch", "onnx2tf")
    assert art["inputs"][0]["layout"] in ("NCHW", "NHWC") and art["inputs"][0]["name"] == "image"
    assert {"torch", "ai-edge-litert"} <= set(art["versions"])
    assert manifest["source"]["description"].startswith("random init, seed 0")
    contract = manifest["contract"]["inputs"][0]
    assert contract["shape"] == [1, 3, 16, 16] and contract["color_order"] == "RGB"
    assert contract["value_range"] == [0.0, 1.0]
    assert manifest["contract"]["outputs"][0]["shape"] == [1, 3, 64, 64]
    parity = manifest["parity"]
    assert parity["status"] == "pass" and "LiteRT" in parity["engine"]
    assert [s["sample"] for s in parity["samples"]][:3] == ["photo:astronaut", "photo:coffee", "photo:chelsea"]
    assert manifest["model"]["params"] > 0 and manifest["model"]["macs"] > 0
    onnx_manifest = json.loads((out / "realesrgan-x4plus" / "onnx-fp32" / "manifest.json").read_text())
    assert onnx_manifest["artifact"]["details"]["opset"] == 18
    coreml = json.loads((out / "realesrgan-x4plus" / "coreml-fp16" / "manifest.json").read_text())
    assert coreml["artifact"]["details"]["minimum_deployment_target"] == "iOS16"
    assert (out / "realesrgan-x4plus" / "export.json").is_file()
    assert not list((out / "realesrgan-x4plus").glob(".staging-*"))
    pte = json.loads((out / "realesrgan-x4plus" / "executorch-fp32" / "manifest.json").read_text())
    assert pte["artifact"]["main_file"].endswith(".pte") and pte["artifact"]["details"]["delegation"]["xnnpack_subgraphs"]


def test_typed_manifest_round_trips_and_still_reads_schema_1(tiny_export):
    from edgeport.parity_tests.manifest import Manifest, read_manifest

    out, _ = tiny_export
    path = out / "realesrgan-x4plus" / "coreml-fp16" / "manifest.json"
    manifest = read_manifest(path)
    raw = json.loads(path.read_text())
    assert manifest.to_dict() == raw
    assert manifest.recipe.name == "fp16" and manifest.artifact.export_precision == "fp16"
    assert manifest.inputs[0].value_range == (0.0, 1.0) and manifest.outputs[0].shape == (1, 3, 64, 64)
    old = {**raw, "schema": "edgeport.manifest/1"}
    old.pop("recipe")
    old["artifact"] = {**raw["artifact"], "precision": "fp16"}
    old["artifact"].pop("export_precision")
    legacy = Manifest.from_dict(old)
    assert (legacy.recipe.name, legacy.artifact.export_precision, legacy.parity) == ("fp16", "fp16", manifest.parity)


def test_artifact_folders_are_readable_by_other_users(tiny_export):
    out, summary = tiny_export
    for row in summary.rows:
        mode = Path(row.path).stat().st_mode & 0o777
        assert mode & 0o055 == 0o055, (row.path, oct(mode))   # group and others may read and enter it


def test_x2plus_pixel_unshuffle_exports_everywhere(tmp_path):
    plan = ExportPlan(model="realesrgan-x2plus", formats=("onnx", "tflite", "coreml"), out_root=tmp_path,
                      recipes=("fp32",), input_hw=(16, 16), config={"num_block": 1, "num_feat": 16,
                                                                       "num_grow_ch": 8})
    summary = run_export(plan)
    assert [r.status for r in summary.rows] == ["pass"] * 3, [r.message for r in summary.rows]


def test_dynamic_hw_onnx_and_coreml_run_at_other_sizes(tmp_path):
    import onnxruntime as ort

    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

    plan = ExportPlan(model="realesr-general-x4v3", formats=("onnx", "coreml"), out_root=tmp_path,
                      input_hw=(16, 16), recipes=("fp32",), config={"num_conv": 2, "num_feat": 16},
                      dynamic_hw=True)
    onnx_row, coreml_row = run_export(plan).rows
    assert onnx_row.status == "pass" and coreml_row.status == "pass", (onnx_row, coreml_row)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 24, 20, 3), dtype=np.uint8)   # image I/O: uint8 NHWC
    session = ort.InferenceSession(str(Path(onnx_row.path) / "realesr-general-x4v3.onnx"))
    y = session.run(None, {"image": pixels})[0]
    assert y.shape == (1, 96, 80, 3) and y.dtype == np.uint8
    manifest = json.loads((Path(coreml_row.path) / "manifest.json").read_text())
    assert manifest["artifact"]["details"]["dynamic_hw"] == [16, 2048]
    program = MilEvaluator(load_mil_program(Path(coreml_row.path) / "realesr-general-x4v3.mlpackage"))
    levels = program.run({"image": pixels.transpose(0, 3, 1, 2)})["upscaled"]   # Core ML image: NCHW levels
    assert np.abs(levels.transpose(0, 2, 3, 1) - y).max() <= 1


class _NearestExact(nn.Module):
    """nearest-exact resize: ONNX takes it, coremltools' torch frontend has no converter for it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest-exact")


def _fake_spec(factory):
    return ModelSpec(name="test-net", summary="test", factory=factory,
                     inputs=(TensorContract("image", (1, 3, 16, 16)),),
                     outputs=(TensorContract("out", (1, 3, 32, 32)),),
                     load_weights=lambda m, p: None, make_inputs=photo_inputs,
                     metadata=ModelMetadata(paper="-", upstream="-"))


def test_a_failing_format_is_reported_and_does_not_stop_the_others(tmp_path, monkeypatch):
    from edgeport import models
    monkeypatch.setenv("EDGEPORT_IN_PROCESS", "1")   # the patch lives in this process
    monkeypatch.setattr(models, "all_specs", lambda: {"test-net": _fake_spec(_NearestExact)})
    summary = run_export(ExportPlan(model="test-net", formats=("coreml", "onnx"), out_root=tmp_path,
                                    recipes=("fp32",)))
    coreml, onnx = summary.rows
    assert coreml.status == "export-failed" and "upsample_nearest_exact2d" in (coreml.op or "")
    assert "coremltools.convert failed" in coreml.message
    assert onnx.status == "pass"
    assert summary.exit_code == 1
    recorded = json.loads((tmp_path / "test-net" / "export.json").read_text())
    assert recorded["rows"][0]["op"] == coreml.op and not recorded["ok"]
    assert not (tmp_path / "test-net" / "coreml-fp32").exists()


def test_failed_reexport_keeps_the_previous_artifact_whole(tmp_path, monkeypatch):
    from edgeport.exporters.formats import get_format

    plan = ExportPlan(model="realesr-general-x4v3", formats=("onnx",), out_root=tmp_path, input_hw=(16, 16),
                      config={"num_conv": 1, "num_feat": 8})
    (row,) = run_export(plan).rows
    folder = Path(row.path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    exporter = get_format("onnx").exporter
    original = type(exporter).export

    def half_then_crash(self, request):
        (request.work_dir / "realesr-general-x4v3.onnx").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setenv("EDGEPORT_IN_PROCESS", "1")   # the patch lives in this process
    monkeypatch.setattr(type(exporter), "export", half_then_crash)
    (row2,) = run_export(plan).rows
    assert row2.status == "export-failed" and "disk full" in row2.message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list(folder.parent.glob(".staging-*"))
    monkeypatch.setattr(type(exporter), "export", original)


def test_a_killed_runs_leftovers_are_removed_by_the_next_run_and_a_live_runs_are_kept(tmp_path):
    import os
    import subprocess
    import time

    folder = tmp_path / "realesr-general-x4v3"
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        dead = [folder / f".staging-onnx-fp32-{gone.pid}-k1ll3d", folder / f".old-onnx-fp32-{gone.pid}-0123abcd"]
        unnamed = folder / ".staging-onnx-fp32-x7y8z9"        # from a version that did not name its process
        working = folder / f".staging-onnx-fp16-{live.pid}-w0rk1n"
        for path in (*dead, unnamed, working):
            path.mkdir(parents=True)
            (path / "realesr-general-x4v3.onnx").write_bytes(b"half")
        os.utime(unnamed, (time.time() - 3600, time.time() - 3600))
        plan = ExportPlan(model="realesr-general-x4v3", formats=("onnx",), out_root=tmp_path, input_hw=(16, 16),
                          config={"num_conv": 1, "num_feat": 8})
        (row,) = run_export(plan).rows
        assert row.status == "pass"
        assert not any(p.exists() for p in (*dead, unnamed)) and working.is_dir()
    finally:
        live.kill()


@pytest.mark.e2e
def test_sigkill_of_a_whole_export_leaves_nothing_half_written_and_a_rerun_passes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "edgeport", "export", "realesr-general-x4v3", "--to", "onnx,tflite",
            "--input-size", "16x16", "--set", "num_conv=1", "--set", "num_feat=8", "--out", str(tmp_path), "--quiet"]
    folder = tmp_path / "realesr-general-x4v3"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(folder.glob(".staging-tflite-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(folder.glob(".staging-tflite-*")), "the export ended before it could be killed mid-conversion"
    os.killpg(proc.pid, signal.SIGKILL)      # mid-conversion: no cleanup of any kind runs
    proc.wait()
    assert list(folder.glob(".staging-tflite-*"))     # what SIGKILL leaves; the rerun must clear it
    for artifact in (p for p in folder.iterdir() if not p.name.startswith(".")):
        assert (artifact / "manifest.json").is_file(), f"{artifact} is half-written"   # complete or absent
    rerun = subprocess.run(args, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not list(folder.glob(".staging-*")) and not list(folder.glob(".old-*"))


def test_gate_fails_when_the_artifact_really_differs(tmp_path, monkeypatch):
    """Perturb what the runtime returns: the gate must catch an error far below its bound."""
    import edgeport.parity_tests.gate as gate

    real_open = gate._open

    def skewed(record, folder):
        runtime = real_open(record, folder)
        run = runtime.run
        # two 8-bit levels: image outputs are judged as the pixels an app gets (~42 dB)
        runtime.run = lambda inputs: {k: v + 2 / 255 for k, v in run(inputs).items()}
        return runtime

    monkeypatch.setenv("EDGEPORT_IN_PROCESS", "1")   # the patch lives in this process
    monkeypatch.setattr(gate, "_open", skewed)
    plan = ExportPlan(model="realesr-general-x4v3", formats=("onnx",), out_root=tmp_path, input_hw=(16, 16),
                      config={"num_conv": 1, "num_feat": 8})
    (row,) = run_export(plan).rows
    assert row.status == "parity-fail" and row.worst_psnr_db < 60 and not math.isinf(row.worst_psnr_db)


class _WritesIntoItsInput(nn.Module):
    """Like spandrel's RCAN (`x *= rgb_range`): a forward that mutates its input in place."""

    def forward(self, x):
        x *= 2.0
        return x + 1.0


def test_a_forward_that_writes_into_its_input_does_not_change_the_parity_samples():
    from edgeport.models.spec import ParityInput
    from edgeport.parity_tests.reference import torch_outputs

    sample = ParityInput("photo:x", {"x": np.full((1, 1, 2, 2), 0.25, dtype=np.float32)})
    (ref,) = torch_outputs(_WritesIntoItsInput(), [sample], ["x"], ["y"])
    assert np.all(sample.arrays["x"] == 0.25) and np.all(ref["y"] == 1.5)
