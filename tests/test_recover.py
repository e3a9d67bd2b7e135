"""prune<N>+recover: distillation from the unpruned model, and the tune command's table and front."""
from __future__ import annotations

import json
import re
import math

import pytest
import torch
from torch import nn

from edgeport.tune.ladder import TuneRow, int8_verdicts, pareto, timing_spread, tune_table
from edgeport.quantize.prune import prune_channels
from edgeport.quantize.recipes import parse_recipe
from edgeport.quantize.recover import distil


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.Conv2d(24, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.Conv2d(24, 3, 3, padding=1)).eval()


def _photos(n: int = 4) -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    base = torch.linspace(0, 1, 40).view(1, 1, 1, 40).expand(1, 3, 40, 40)
    return [((base + 0.3 * torch.rand(1, 3, 40, 40, generator=g)).clamp(0, 1),) for _ in range(n)]


def test_distillation_brings_the_pruned_net_closer_to_the_original_and_says_why_it_stopped():
    teacher = _net()
    pruned = prune_channels(teacher, (torch.rand(1, 3, 40, 40),), 50).module
    before_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    result = distil(pruned, teacher, _photos(), target_db=99.0, max_steps=40, max_seconds=60, learning_rate=1e-3)
    assert result.train_db_after > result.train_db_before + 3, result.to_dict()
    assert result.stopped_because == "step budget (40)" and result.steps == 40
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before_state.items())   # teacher untouched
    bn = [m for m in result.module.modules() if isinstance(m, nn.BatchNorm2d)]
    pruned_bn = [m for m in pruned.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a.running_mean, b.running_mean) for a, b in zip(bn, pruned_bn))   # statistics frozen
    easy = distil(pruned, teacher, _photos(), target_db=result.train_db_before - 1, max_steps=60)
    assert easy.steps == 0 and easy.stopped_because.startswith("reached")


def test_recover_without_photos_is_refused():
    with pytest.raises(ValueError, match="training photos"):
        distil(_net(), _net(), [])


def test_recover_recipes_parse_and_share_the_plain_pruned_model():
    recover = parse_recipe("prune50+recover")
    assert recover.recover and recover.needs_calibration and recover.module_part == "prune50+recover"
    assert parse_recipe("prune50").module_part == "prune50"
    then = parse_recipe("prune30+recover+w8a8")
    assert then.export_precision == "w8a8" and then.prune_percent == 30 and then.recover


def _row(fmt, recipe, size, p50, db, status="pass"):
    return TuneRow(fmt, recipe, status, size, p50, db, {}, "engine", "engine")


def test_tune_front_table_and_int8_verdict():
    rows = [_row("onnx", "fp32", 1000, 10.0, math.inf), _row("onnx", "fp16", 500, 9.0, 60.0),
            _row("onnx", "w8a8", 250, 12.0, 35.0), _row("onnx", "w8", 260, 8.0, 30.0),
            _row("onnx", "prune50+w8a8", 300, 6.0, 20.0, "parity-fail")]
    rows = [TuneRow(**{**r.__dict__, "vs_fp32_latency": r.p50_ms / 10.0}) for r in rows]
    front = pareto(rows)
    assert front == {("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "w8a8")}   # w8: bigger and worse than w8a8
    verdicts = int8_verdicts(rows)
    assert verdicts[0].startswith("onnx w8a8: 1.20x") and "does NOT beat" in verdicts[0]
    table = tune_table(rows, front)
    assert "exact" in table and "1.20x" in table and table.count("*") == 3


def test_identical_files_timed_apart_show_the_timing_noise():
    rows = [TuneRow("tflite", "w8a8", "pass", 10, 74.1, 36.9, {}, "e", "e", digest="abc"),
            TuneRow("tflite", "w8a8+auto", "pass", 10, 46.5, 36.9, {}, "e", "e", digest="abc"),
            TuneRow("tflite", "fp32", "pass", 40, 129.0, 88.3, {}, "e", "e", digest="def")]
    assert timing_spread(rows) == ["tflite w8a8 = w8a8+auto: one file, timed 74.1 / 46.5 ms (59% apart: noise)"]


@pytest.mark.e2e
def test_prune_recover_export_beats_plain_pruning_against_the_original_and_says_how(tmp_path):
    from edgeport.export.isolation import run_export
    from edgeport.export.plan import ExportPlan

    plan = ExportPlan(model="realesr-general-x4v3", formats=("onnx",), out_root=tmp_path,
                      recipes=("prune50", "prune50+recover"), input_hw=(32, 32),
                      config={"num_conv": 4, "num_feat": 32})
    summary = run_export(plan)
    assert summary.exit_code == 0 and all(r.status == "pass" for r in summary.rows)
    folder = tmp_path / "realesr-general-x4v3"
    plain = json.loads((folder / "onnx-prune50" / "manifest.json").read_text())["recipe"]
    recovered = json.loads((folder / "onnx-prune50+recover" / "manifest.json").read_text())["recipe"]
    assert 0.45 <= recovered["conv_macs_ratio"] <= 0.56 and "least squares" in recovered["method"]
    assert recovered["vs_original_photos_before_recovery_db"] == plain["vs_original_photos_db"]
    assert recovered["vs_original_photos_db"] > plain["vs_original_photos_db"] + 10, (plain, recovered)
    recovery = recovered["recovery"]
    assert recovered["prune_and_refit_seconds"] > 0
    # the fine-tune says why it stopped, and its step count agrees: none when the refit already reached the target
    assert re.fullmatch(r"reached .* dB|step budget \(\d+\)|time budget \(\d+ s\)", recovery["stopped_because"])
    budget = re.fullmatch(r"step budget \((\d+)\)", recovery["stopped_because"])
    assert isinstance(recovery["steps"], int) and (budget is None or recovery["steps"] == int(budget.group(1)))
    assert recovery["train_db_after"] is None or recovery["train_db_after"] >= recovery["train_db_before"]
