"""Runs that survive bad outputs: a runtime that gives Inf or NaN is a failed row with a JSON-safe manifest,
the other rows and the summary go on, and `check` judges it the same way."""
from __future__ import annotations

import json
import math
from pathlib import Path

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


def nan_everywhere():
    return NotANumber()
'''


def _strict_json(path: Path) -> dict:
    """What a CI job reading the file gets: Infinity or NaN in it would raise here."""
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))


def _export(tmp_path: Path, factory: str, formats: str, recipes: str) -> int:
    (tmp_path / "faulty.py").write_text(FAULTY_MODELS)
    return main(["export", "--model", f"{tmp_path / 'faulty.py'}:{factory}", "--input", "1x3x16x16", "--to", formats,
                 "--recipe", recipes, "--out", str(tmp_path / "out"), "--quiet"])


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
