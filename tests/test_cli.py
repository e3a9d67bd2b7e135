"""The CLI as a user meets it: one clear line and exit 2 for bad input, nothing written; check and its doors."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "num_block=1", "--set", "num_feat=16", "--set", "num_grow_ch=8", "--input-size", "16x16"]


def edgeport(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgeport", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("edgeport: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_imports_no_converter():
    code = ("import sys; from edgeport.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'coremltools', 'tensorflow', 'litert_torch', 'onnxruntime', 'onnx') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert "export" in edgeport("--help").stdout


def test_models_lists_params_and_macs():
    proc = edgeport("models", "--json")
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["realesrgan-x4plus"]["params"] == pytest.approx(16.7e6, rel=0.001)
    assert rows["realesr-general-x4v3"]["macs"] > 0
    assert "GMAC" in edgeport("models").stdout


@pytest.mark.parametrize("args,needles", [
    (["export", "realesrgan-x4"], ["unknown model", "did you mean realesrgan-x4plus"]),
    (["export", "realesrgan-x4plus", "--to", "onnx,pdf"], ["unknown format 'pdf'"]),
    (["export", "realesrgan-x4plus", "--set", "blocks=2"], ["no setting blocks"]),
    (["export", "realesrgan-x2plus", "--input-size", "15x15", "--set", "num_block=1"], ["multiples of 2, not 15x15"]),
])
def test_bad_arguments_get_one_line_and_write_nothing(tmp_path, args, needles, capsys):
    out = tmp_path / "out"
    assert_one_line_error(cli(capsys, *args, "--out", out), *needles)
    assert not out.exists()


def test_bad_weights_get_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert_one_line_error(cli(capsys, "export", "realesrgan-x4plus", *TINY, "--weights", tmp_path / "no.pth",
                                   "--out", out), "weights file not found")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04garbage" * 10)
    assert_one_line_error(cli(capsys, "export", "realesrgan-x4plus", *TINY, "--weights", tmp_path / "junk.pth",
                                   "--out", out), "junk.pth", "pickle is corrupt")
    (tmp_path / "random.pth").write_bytes(b"\x13" + os.urandom(4095))
    proc = cli(capsys, "export", "realesrgan-x4plus", *TINY, "--weights", tmp_path / "random.pth", "--out", out)
    assert_one_line_error(proc, "is not a PyTorch checkpoint")
    assert "would run code" not in proc.stderr
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(16, 3, 3, 3)}}, tmp_path / "partial.pth")
    assert_one_line_error(cli(capsys, "export", "realesrgan-x4plus", *TINY, "--weights", tmp_path / "partial.pth",
                                   "--out", out), "does not fit this architecture", "missing conv_first.bias")
    assert not out.exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(cli(capsys, "export", "realesrgan-x4plus", *TINY, "--out", blocker / "sub"),
                          "cannot write to output folder", "is a file")


@pytest.mark.e2e
def test_export_json_with_real_weights(tmp_path):
    torch.manual_seed(3)
    from edgeport.models import get_spec

    state = get_spec("realesrgan-x4plus").build(num_block=1, num_feat=16, num_grow_ch=8).state_dict()
    torch.save({"params_ema": state}, tmp_path / "w.pth")
    proc = edgeport("export", "realesrgan-x4plus", *TINY, "--to", "onnx", "--weights", tmp_path / "w.pth",
                    "--out", tmp_path / "out", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] and summary["rows"][0]["status"] == "pass"
    assert summary["source"].startswith(f"weights {tmp_path / 'w.pth'}")


@pytest.fixture
def artifacts_copy(tiny_export, tmp_path):
    out, _ = tiny_export
    dst = tmp_path / "artifacts"
    shutil.copytree(out, dst)
    return dst


@pytest.mark.e2e
def test_check_passes_and_writes_junit(artifacts_copy, tmp_path, capsys):
    junit = tmp_path / "reports" / "parity.xml"
    proc = cli(capsys, "check", artifacts_copy, "--junit", junit, "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed, 0 failed" in proc.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "5" and suite.get("failures") == "0" and suite.get("errors") == "0"
    data = json.loads(cli(capsys, "check", artifacts_copy, "--json", "--quiet").stdout)
    engines = {a["parity"]["engine"].split()[0] for a in data["artifacts"]}
    assert data["ok"] and engines >= {"onnxruntime", "LiteRT", "edgeport", "ExecuTorch"}


@pytest.mark.e2e
def test_check_fails_on_a_changed_file_and_on_a_missed_gate(artifacts_copy, capsys):
    onnx_dir = artifacts_copy / "realesrgan-x4plus" / "onnx-fp32"
    model = onnx_dir / "realesrgan-x4plus.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    coreml = artifacts_copy / "realesrgan-x4plus" / "coreml-fp16" / "manifest.json"
    manifest = json.loads(coreml.read_text())
    manifest["parity"]["gate"]["min_psnr_db"] = 200.0   # far above what fp16 reaches
    coreml.write_text(json.dumps(manifest))
    proc = cli(capsys, "check", artifacts_copy, "--quiet")
    assert proc.returncode == 1
    assert "changed since export" in proc.stdout and "< 200 dB" in proc.stdout
    assert "3 passed, 2 failed" in proc.stdout


@pytest.mark.e2e
def test_pytest_door_is_the_same_gate(tiny_export, tmp_path):
    def gate(folder):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(ROOT / "parity_tests" / "test_artifacts.py"), "--artifacts", str(folder)],
                              capture_output=True, text=True, cwd=ROOT)

    empty = gate(tmp_path / "nothing-here")
    assert empty.returncode == 1 and "no artifacts to gate" in empty.stdout
    two = tmp_path / "artifacts" / "realesrgan-x4plus"    # two formats: the door, not every runtime again
    for name in ("onnx-fp32", "tflite-fp32"):
        shutil.copytree(tiny_export[0] / "realesrgan-x4plus" / name, two / name)
    model = two / "tflite-fp32" / "realesrgan-x4plus.tflite"
    model.write_bytes(b"\0" + model.read_bytes()[1:])
    bad = gate(two.parent)   # the intact artifact passes, the changed one fails
    assert bad.returncode == 1 and "1 failed, 1 passed" in bad.stdout, bad.stdout[-2000:]
    assert "tflite-fp32" in bad.stdout and "changed since export" in bad.stdout


@pytest.mark.e2e
def test_check_reports_an_unreadable_manifest_and_an_unloadable_model(artifacts_copy, capsys):
    (artifacts_copy / "realesrgan-x4plus" / "coreml-fp32" / "manifest.json").write_text("{not json")
    onnx_dir = artifacts_copy / "realesrgan-x4plus" / "onnx-fp32"
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    (onnx_dir / "realesrgan-x4plus.onnx").write_bytes(b"not an onnx file")
    manifest["artifact"]["files"] = [{"path": "realesrgan-x4plus.onnx", "bytes": 16,
                                      "sha256": __import__("hashlib").sha256(b"not an onnx file").hexdigest()}]
    (onnx_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = cli(capsys, "check", artifacts_copy, "--quiet")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "unreadable manifest" in proc.stdout and "could not load the artifact" in proc.stdout
    assert "3 passed, 2 failed" in proc.stdout
