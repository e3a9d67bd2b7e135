"""Any nn.Module through the same pipeline: `--model file.py:factory --input SHAPE` and the Python API."""
import json
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import edgeport.api as api
from edgeport.models import ModelError, get_spec

ROOT = Path(__file__).resolve().parents[1]

MODEL_FILE = '''
import torch
from torch import nn

class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)
    def forward(self, image, mask):
        return torch.sigmoid(self.conv(torch.cat([image, mask], 1)))

def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

def two_inputs():
    return TwoInputs()

def broken():
    raise RuntimeError("boom")

def not_a_module():
    return 42
'''


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(MODEL_FILE)
    return path


def run_cli(*args):
    """The CLI in this process, whose row process the tests share (test_cli.py runs it as a program too)."""
    import contextlib
    import io

    from edgeport.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.mark.e2e
def test_custom_file_exports_checks_and_rechecks(model_file, tmp_path, capsys):
    from edgeport.cli import main

    out = tmp_path / "out"
    code = main(["export", "--model", f"{model_file}:build", "--input", "1x3x24x24", "--to", "onnx,coreml",
                 "--precision", "fp32", "--out", str(out), "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["model"] == "mynet-build" and [r["status"] for r in summary["rows"]] == ["pass", "pass"]
    manifest = json.loads((out / "mynet-build" / "onnx-fp32" / "manifest.json").read_text())
    assert manifest["source"]["model"] == f"{model_file.resolve()}:build"
    assert manifest["contract"]["inputs"][0]["shape"] == [1, 3, 24, 24]
    check = run_cli("check", out, "--quiet")   # another process: the reference is rebuilt from the file
    assert check.returncode == 0 and "2 passed, 0 failed" in check.stdout, check.stdout + check.stderr


@pytest.mark.e2e
def test_custom_two_input_model(model_file, tmp_path):
    spec = get_spec(f"{model_file}:two_inputs", [(1, 3, 16, 16), (1, 1, 16, 16)])
    assert [c.name for c in spec.inputs] == ["input_0", "input_1"] and spec.outputs[0].shape == (1, 3, 16, 16)
    summary = api.export(f"{model_file}:two_inputs", inputs=[(1, 3, 16, 16), (1, 1, 16, 16)], to=["tflite"],
                         out=tmp_path)
    assert summary.rows[0].status == "pass", summary.rows[0].message


@pytest.mark.parametrize("factory,shape,needle", [
    ("broken", "1x3x16x16", "factory .*:broken failed: RuntimeError: boom"),
    ("not_a_module", "1x3x16x16", "returned a int, not a torch.nn.Module"),
    ("missing", "1x3x16x16", "has no callable 'missing'"),
    ("build", "1x5x16x16", "rejects input 1x5x16x16"),
])
def test_custom_factory_errors_are_one_clear_line(model_file, tmp_path, factory, shape, needle):
    import re

    proc = run_cli("export", "--model", f"{model_file}:{factory}", "--input", shape, "--out", tmp_path / "o")
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeport: error:")]
    assert len(errors) == 1 and re.search(needle, errors[0]), proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--model", "nofile.py:build", "--input", "1x3x8x8"], "model file not found"),
    (["--model", "x.py:build"], "needs its input shape"),
    (["--input", "1x3x8x8", "realesrgan-x4plus"], "--input is for custom models"),
    (["--all", "--set", "num_block=2"], "--all exports every model at its defaults"),
    ([], "name the models"),
    (["--model", "x.py:build", "--input", "1xAx8"], "input shape must look like"),
])
def test_export_target_errors(tmp_path, args, needle, model_file):
    args = [a.replace("x.py", str(model_file)) for a in args]
    proc = run_cli("export", *args, "--out", tmp_path / "o")
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


@pytest.mark.e2e
def test_python_api_takes_a_module_object(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh())
    summary = api.export(module, inputs=[(1, 3, 16, 16)], to=["onnx", "coreml"], recipes=["fp32"], out=tmp_path,
                         name="my-filter")
    assert summary.model == "my-filter" and all(r.status == "pass" for r in summary.rows)
    checks = api.check(tmp_path)
    assert len(checks) == 2 and all(c.report.status == "error" for c in checks)
    assert "in-memory module" in checks[0].report.message   # said plainly, never passed silently
    with pytest.raises(ModelError, match="expected a torch.nn.Module"):
        api.export(42, inputs=[(1, 3, 8, 8)], out=tmp_path)
