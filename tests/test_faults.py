"""The fault matrix: runs that survive what a model, a converter or the machine does to them. A runtime that
gives Inf or NaN is a failed row with a JSON-safe manifest; a converter that segfaults, hangs or exceeds the
memory bound fails its row alone (each row runs in a child process); a full disk, two runs into one folder at
once, and a tampered artifact each end in a verdict, never a traceback or a half-written folder."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.parity_tests.figures import PARITY_FIGURE

FAULTY_MODELS = '''
import torch
from torch import nn


class Overflow(nn.Module):
    """Fine in float32; past float16's largest value (65504) on bright pixels."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * 0 + x * 7e4


class NotANumber(nn.Module):
    """NaN everywhere, in every precision."""
    def forward(self, x):
        return torch.sqrt(-(x + 1))


def overflow():
    return Overflow()


def _converting(name):
    """True inside the named format's exporter (the model is traced there, eagerly)."""
    import inspect

    return any(name in frame.filename for frame in inspect.stack(0))


class Faulty(nn.Module):
    """Segfaults in the Core ML conversion, hangs in ExecuTorch's, fills memory in ONNX's when asked to, and
    refuses odd input sizes: the other formats convert it normally."""
    def __init__(self, greedy=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.greedy = greedy

    def forward(self, x):
        if x.shape[-1] % 2:
            raise ValueError("this net takes even sizes only")
        if _converting("coreml_exporter"):
            import ctypes
            ctypes.string_at(0)
        if _converting("executorch_exporter"):
            import time
            time.sleep(3600)
        if self.greedy and _converting("onnx_exporter"):
            import numpy
            numpy.ones(2 ** 34, numpy.uint8)        # 16 GiB
        return self.conv(x)


def crash_and_hang():
    return Faulty()


class DeadBranch(nn.Module):
    """A ReLU branch that is 0 on every input (its conv zeroed, bias -1): one constant tensor in the graph."""
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.dead = nn.Conv2d(8, 8, 1)
        with torch.no_grad():
            self.dead.weight.zero_()
            self.dead.bias.fill_(-1.0)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        return self.b(y + torch.relu(self.dead(y)))


def dead_branch():
    return DeadBranch()


def greedy():
    return Faulty(greedy=True)


def nan_everywhere():
    return NotANumber()
'''


def _strict_json(path: Path) -> dict:
    """What a CI job reading the file gets: Infinity or NaN in it would raise here."""
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))


def _export(tmp_path: Path, factory: str, formats: str, recipes: str, *extra: str, size: str = "16x16") -> int:
    (tmp_path / "faulty.py").write_text(FAULTY_MODELS)
    return main(["export", "--model", f"{tmp_path / 'faulty.py'}:{factory}", "--input", f"1x3x{size}", "--to",
                 formats, "--recipe", recipes, "--out", str(tmp_path / "out"), "--quiet", *extra])


def _no_leftovers(folder: Path) -> None:
    assert not list(folder.glob(".staging-*")) and not list(folder.glob(".old-*"))
    for artifact in (p for p in folder.iterdir() if p.is_dir()):
        assert (artifact / "manifest.json").is_file(), f"{artifact} is half-written"


def test_inf_at_fp16_fails_its_rows_and_the_run_goes_on(tmp_path, capsys):
    assert _export(tmp_path, "overflow", "onnx,coreml", "fp32,fp16") == 1
    out = capsys.readouterr()
    assert "edgeport: error" not in out.err and "2/4 ok" in out.out     # a verdict, not an error line
    folder = tmp_path / "out" / "faulty-overflow"
    summary = _strict_json(folder / "export.json")
    rows = {(r["format"], r["recipe"]): r for r in summary["rows"]}
    assert rows["onnx", "fp32"]["status"] == rows["coreml", "fp32"]["status"] == "pass"
    inf_row = rows["coreml", "fp16"]     # the MIL evaluator computes in float16: bright pixels overflow
    assert inf_row["status"] == "parity-fail" and inf_row["finite"] is False and inf_row["photo_psnr_db"] is None
    manifest = _strict_json(folder / "coreml-fp16" / "manifest.json")
    parity = manifest["parity"]
    assert parity["finite"] is False and parity["non_finite_samples"] and parity["worst_max_abs"] is None
    bad = [s for s in parity["samples"] if s["sample"] in parity["non_finite_samples"]]
    assert bad and all(s["finite"] is False and s["max_abs"] is None and s["psnr_db"] is None for s in bad)
    assert "NaN/Inf" in out.out and "runtime output has NaN or Inf" in out.out
    assert not list(folder.glob(".staging-*"))
    assert main(["check", str(folder / "coreml-fp16"), "--quiet"]) == 1      # re-judged the same way
    assert "runtime output has NaN or Inf" in capsys.readouterr().out


def test_nan_everywhere_fails_every_row_with_a_manifest(tmp_path, capsys):
    assert _export(tmp_path, "nan_everywhere", "onnx", "fp32") == 1
    assert "edgeport: error" not in capsys.readouterr().err
    folder = tmp_path / "out" / "faulty-nan_everywhere" / "onnx-fp32"
    manifest = _strict_json(folder / "manifest.json")
    assert manifest["parity"]["status"] == "fail" and manifest["parity"]["finite"] is False
    assert (folder / PARITY_FIGURE).stat().st_size > 0       # the worst sample is drawn, NaN and all
    assert not math.isnan(manifest["artifact"]["total_bytes"])


def test_a_forward_that_refuses_the_input_size_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert _export(tmp_path, "crash_and_hang", "onnx", "fp32", size="17x17") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rejects input 1x3x17x17: ValueError: this net takes even sizes only" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_memory_bound_fails_the_greedy_row_alone(tmp_path, capsys):
    assert _export(tmp_path, "greedy", "onnx,tflite", "fp32", "--max-memory", "3G") == 1
    out = capsys.readouterr().out
    rows = {r["format"]: r for r in _strict_json(tmp_path / "out" / "faulty-greedy" / "export.json")["rows"]}
    assert rows["tflite"]["status"] == "pass" and rows["onnx"]["status"] == "export-failed"
    assert "MemoryError" in rows["onnx"]["message"] and "memory bound (3.0 GiB, --max-memory)" in rows["onnx"]["message"]
    assert "1/2 ok" in out
    _no_leftovers(tmp_path / "out" / "faulty-greedy")


def test_a_segfaulting_and_a_hanging_converter_fail_their_rows_and_the_run_goes_on(tmp_path, capsys):
    """One run, three formats: ONNX converts, Core ML's conversion segfaults (the row process dies; a fresh one
    takes the rest), ExecuTorch's never returns (stopped after the time bound)."""
    assert _export(tmp_path, "crash_and_hang", "onnx,coreml,executorch", "fp32", "--converter-timeout", "2") == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "1/3 ok" in captured.out
    folder = tmp_path / "out" / "faulty-crash_and_hang"
    summary = _strict_json(folder / "export.json")
    rows = {r["format"]: r for r in summary["rows"]}
    assert rows["onnx"]["status"] == "pass" and summary["isolation"] == "process"
    assert rows["coreml"]["status"] == "crashed"
    assert ("killed by SIGSEGV in the Core ML converter (coremltools) at faulty.py:" in rows["coreml"]["message"]
            and "in forward" in rows["coreml"]["message"])
    assert rows["executorch"]["status"] == "timed-out"
    assert "no progress for 12 s in the ExecuTorch converter" in rows["executorch"]["message"]
    assert "crashed" in (folder / "report.md").read_text()
    _no_leftovers(folder)


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_output_filesystem_fails_rows_in_words_and_leaves_nothing_half_written(tmp_path, capsys):
    full = tmp_path / "full"
    if not _tmpfs(full, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): the full-disk case is untested")
    try:
        free = os.statvfs(full).f_bavail * os.statvfs(full).f_frsize
        (full / "filler").write_bytes(b"\0" * (free - 48 * 1024))       # 48 KB left: less than one artifact
        code = main(["export", "realesr-general-x4v3", "--to", "onnx,tflite", "--input-size", "16x16",
                     "--set", "num_conv=2", "--set", "num_feat=16", "--out", str(full), "--quiet"])
        captured = capsys.readouterr()
        assert code == 1 and "Traceback" not in captured.err and "0/2 ok" in captured.out
        assert "No space left on device" in captured.out or "filesystem is full" in captured.out
        _no_leftovers(full / "realesr-general-x4v3")
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_two_exports_into_one_folder_at_once_then_a_tampered_file_fails_check(tmp_path, capsys):
    args = [sys.executable, "-m", "edgeport", "export", "realesr-general-x4v3", "--to", "onnx", "--recipe",
            "fp32,fp16", "--input-size", "16x16", "--set", "num_conv=1", "--set", "num_feat=8",
            "--out", str(tmp_path), "--quiet", "--json"]
    env = {**os.environ, "EDGEPORT_IN_PROCESS": "1"}     # two processes, not four: the folder is under test here
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        assert json.loads(out)["ok"] is True
    folder = tmp_path / "realesr-general-x4v3"
    assert _strict_json(folder / "export.json")["ok"] is True
    _no_leftovers(folder)
    assert main(["check", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    onnx = folder / "onnx-fp16" / "realesr-general-x4v3.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    assert main(["check", str(tmp_path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "realesr-general-x4v3.onnx" in out and "sha256" in out


def test_run_takes_odd_but_valid_pngs_and_refuses_broken_ones_in_one_line(tmp_path, capsys):
    """`edgeport run` on what a photo folder holds: a 1x1, an RGBA, a gray and a 16-bit PNG run; a truncated
    PNG, a text file named .png and a PNG declaring 60000x60000 (a decompression bomb) are one line each,
    exit 2, nothing written for them."""
    from PIL import Image

    from test_run_command import _png_declaring

    assert main(["export", "realesr-general-x4v3", "--to", "onnx", "--input-size", "16x16", "--set", "num_conv=1",
                 "--set", "num_feat=8", "--out", str(tmp_path / "art"), "--quiet"]) == 0
    artifact = str(tmp_path / "art" / "realesr-general-x4v3" / "onnx-fp32")
    rng = np.random.default_rng(0)
    good = {"one.png": Image.fromarray(rng.integers(0, 255, (1, 1, 3), np.uint8)),
            "rgba.png": Image.fromarray(rng.integers(0, 255, (20, 24, 4), np.uint8), "RGBA"),
            "gray.png": Image.fromarray(rng.integers(0, 255, (20, 24), np.uint8), "L"),
            "deep.png": Image.fromarray(rng.integers(0, 65535, (20, 24)).astype(np.uint16))}   # I;16
    for name, image in good.items():
        image.save(tmp_path / name)
        assert main(["run", artifact, str(tmp_path / name), "-o", str(tmp_path / "out"), "--overlap", "6",
                     "--margin", "2", "--json"]) == 0, name
        capsys.readouterr()
    written = {p.name.split(".")[0] for p in (tmp_path / "out").iterdir() if p.suffix == ".png"}
    assert written == {name.split(".")[0] for name in good}, written
    whole = (tmp_path / "rgba.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.png").write_text("not a picture")
    _png_declaring(tmp_path / "bomb.png", 60000, 60000)
    for name in ("cut.png", "notes.png", "bomb.png"):
        assert main(["run", artifact, str(tmp_path / name), "-o", str(tmp_path / "bad"), "--overlap", "6",
                     "--margin", "2"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgeport: error:") and name in err[0], err
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir()), name


def test_a_constant_branch_does_not_sink_onnx_w8a8(tmp_path, capsys):
    """onnxruntime's static quantization of a tensor that is one value on every calibration photo wrecked the
    whole output (16.5 dB); its nodes stay float, and the row says which."""
    assert _export(tmp_path, "dead_branch", "onnx", "fp32,w8a8", size="32x32") == 0
    rows = {r["recipe"]: r for r in _strict_json(tmp_path / "out" / "faulty-dead_branch" / "export.json")["rows"]}
    w8a8 = rows["w8a8"]
    assert w8a8["status"] == "pass" and w8a8["photo_psnr_db"] >= 40, w8a8
    assert "2 node(s) kept float: constant on every calibration input" in w8a8["message"]
    manifest = _strict_json(tmp_path / "out" / "faulty-dead_branch" / "onnx-w8a8" / "manifest.json")
    assert len(manifest["artifact"]["details"]["recipe"]["constant_float_nodes"]) == 2
