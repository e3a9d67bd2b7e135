"""Mixed precision (<precision>+auto): the ranking, the prefix search, and the search on real exports."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeport.export.precision_search import kept_units, smallest_passing_prefix
from edgeport.parity_tests.localize import blame_units, by_blame, concentrated
from edgeport.quantize.recipes import RecipeError, parse_recipe
from edgeport.runtimes.base import TracedTensor
from fragile_nets import OffsetNet, OutlierNet


@pytest.mark.parametrize("threshold", [1, 2, 3, 5, 8, 13, 40])
def test_the_prefix_search_finds_the_smallest_passing_prefix_in_few_trials(threshold):
    calls = []

    def passes(k):
        calls.append(k)
        return k >= threshold
    assert smallest_passing_prefix(40, passes) == threshold
    assert len(calls) == len(set(calls)) and len(calls) <= 2 * 6 + 1


def test_the_prefix_search_says_none_when_everything_kept_still_fails_or_trials_run_out():
    assert smallest_passing_prefix(10, lambda k: False) is None
    assert smallest_passing_prefix(1000, lambda k: k >= 999, max_trials=5) is None


def test_auto_recipes_parse_and_keep_their_precisions_gate():
    fp16 = parse_recipe("fp16+auto")
    assert fp16.auto and fp16.export_precision == "fp16" and fp16.gate({}).min_psnr_db == 40.0
    w8a8 = parse_recipe("prune50+w8a8+auto")
    assert w8a8.auto and w8a8.prune_percent == 50 and w8a8.gate({}).samples == "photos"
    with pytest.raises(RecipeError, match="palettize4"):
        parse_recipe("palettize4+auto")


def _traced(entries):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 4, 8, 8)).astype(np.float32)
    out = {}
    for name, op, unit, inputs, noise in entries:
        value = base + (noise * rng.normal(size=base.shape).astype(np.float32) if noise else 0)
        out[name] = TracedTensor(op, value, unit, inputs)
    return out


def test_blame_goes_to_the_unit_that_adds_the_noise_past_quantize_pairs_with_its_consumers():
    """a -> conv1 -> (QDQ) -> conv2 -> (QDQ) -> conv3: conv2's edge adds the noise, conv3 reads it."""
    reference = _traced([("t1", "Conv", "conv1", ("x",), 0), ("t2", "Conv", "conv2", ("t1",), 0),
                         ("t3", "Conv", "conv3", ("t2",), 0)])
    compressed = _traced([
        ("t1", "Conv", "conv1", ("x",), 1e-3),
        ("t1_q", "QuantizeLinear", "t1_QuantizeLinear", ("t1",), 0),
        ("t1_dq", "DequantizeLinear", "t1_DequantizeLinear", ("t1_q",), 0),
        ("t2", "Conv", "conv2", ("t1_dq",), 0.5),
        ("t2_q", "QuantizeLinear", "t2_QuantizeLinear", ("t2",), 0),
        ("t2_dq", "DequantizeLinear", "t2_DequantizeLinear", ("t2_q",), 0),
        ("t3", "Conv", "conv3", ("t2_dq",), 0.5)])
    units = blame_units(reference, compressed, axis=1)
    assert [b.unit for b in units] == ["conv1", "conv2", "conv3"]   # graph order, for the accumulation search
    ranking = by_blame(units)
    assert ranking[0].unit == "conv2" and ranking[0].consumers == ("conv3",)
    assert "conv3" not in [b.unit for b in ranking]            # it adds nothing to what conv2 gave it
    assert kept_units(ranking[:1]) == ("conv2", "conv3") and concentrated(units)
    weights_only = by_blame(blame_units(reference, compressed, axis=1, edges=False))
    assert weights_only[0].unit == "conv2" and weights_only[0].consumers == ()


def test_error_that_grows_along_a_chain_is_not_concentrated():
    chain = [(f"t{i}", "Conv", f"conv{i}", (f"t{i - 1}",), 0) for i in range(1, 9)]
    growing = [(f"t{i}", "Conv", f"conv{i}", (f"t{i - 1}",), 1e-3 * 1.4 ** i) for i in range(1, 9)]
    assert not concentrated(blame_units(_traced(chain), _traced(growing), axis=1))


def test_a_reference_tensor_that_is_not_a_number_is_left_out_of_the_localisation():
    """LiteRT's fp32 file can hand back a NaN intermediate; the manifest must still be written (strict JSON)."""
    from edgeport.parity_tests.localize import Localization, tensor_errors

    reference, compressed = _traced([("t1", "Conv", "conv1", ("x",), 0), ("t2", "Conv", "conv2", ("t1",), 0)]), \
        _traced([("t1", "Conv", "conv1", ("x",), 1e-3), ("t2", "Conv", "conv2", ("t1",), 1e-3)])
    reference["t2"].value[0, 0, 0, 0] = np.nan
    errors = tensor_errors(reference, compressed, axis=1)
    assert [e.tensor for e in errors] == ["t1"]
    json.dumps(Localization("test", 1, None, tuple(errors)).to_dict(), allow_nan=False)


def test_the_search_brings_fp16_over_its_gate_in_core_ml_and_w8a8_in_onnx(tmp_path, capsys):
    """OffsetNet breaks both: fp16 keeps steps of 0.5 at 1000, a per-tensor int8 scale steps of 8. Without an
    fp32 row to compare with, each search exports its own fp32 reference."""
    from edgeport import api

    torch.manual_seed(0)
    rows = [*api.export(OffsetNet().eval(), inputs=[(1, 3, 16, 16)], to=["coreml"], recipes=["fp16+auto"],
                        out=tmp_path, name="net", progress=True).rows,
            *api.export(OffsetNet().eval(), inputs=[(1, 3, 16, 16)], to=["onnx"], recipes=["w8a8+auto"],
                        out=tmp_path, name="net").rows]
    for row in rows:
        assert row.status == "pass", (row.format, row.recipe, row.message)
        found = json.loads((tmp_path / "net" / f"{row.format}-{row.recipe}" / "manifest.json").read_text())
        search = found["recipe"]["mixed_precision"]
        gate = 40 if row.recipe == "fp16+auto" else 30
        assert search["outcome"] == "passed" and search["before_db"] < gate, search
        assert search["kept_units"] and any(t["passed"] for t in search["trials"])
        assert "kept at higher precision" in row.message
    trials = [line for line in capsys.readouterr().err.splitlines() if "coreml fp16+auto search:" in line]
    assert "fp32 for the ranking" in trials[0] and any(" units kept: " in t and "dB, pass (" in t for t in trials)
    onnx = json.loads((tmp_path / "net" / "onnx-w8a8+auto" / "manifest.json").read_text())
    assert {"node_conv2d", "node_conv2d_1"} <= set(onnx["recipe"]["mixed_precision"]["kept_units"])


def test_an_artifact_that_passes_needs_no_search():
    from types import SimpleNamespace

    from edgeport.export.precision_search import Attempt, search_precision

    report = SimpleNamespace(passed=True, gated_db=52.0, status="pass")
    base = Attempt("work", SimpleNamespace(total_bytes=10), SimpleNamespace(report=report))
    job = SimpleNamespace(recipe=SimpleNamespace(export_precision="fp16"))
    chosen, search = search_precision(None, job, None, None, base, lambda *a: pytest.fail("exported"), "work")
    assert chosen is base and search.outcome == "not-needed" and search.to_dict()["before_db"] == 52.0


@pytest.mark.e2e
def test_w8a8_auto_keeps_torch_modules_float_on_the_pt2e_routes(tmp_path):
    from edgeport import api

    torch.manual_seed(0)
    summary = api.export(OutlierNet().eval(), inputs=[(1, 3, 16, 16)], to=["tflite"],
                         recipes=["w8a8", "w8a8+auto"], out=tmp_path, name="net")
    plain = json.loads((tmp_path / "net" / "tflite-w8a8" / "manifest.json").read_text())["artifact"]
    assert plain["route"] == "litert-torch", plain["details"]      # the fast route, float32 I/O put back
    assert plain["details"]["recipe"]["float_boundary"] == ["input 0: QUANTIZE float32 -> int8",
                                                            "output 0: DEQUANTIZE int8 -> float32"]
    assert [b["dtype"] for b in plain["inputs"] + plain["outputs"]] == ["float32", "float32"]
    for row in (r for r in summary.rows if r.recipe == "w8a8+auto"):
        assert row.status == "pass", (row.format, row.message)
        search = json.loads((tmp_path / "net" / f"{row.format}-w8a8+auto" / "manifest.json").read_text())[
            "recipe"]["mixed_precision"]
        assert search["units"] == "torch modules (PT2E)" and "mix" in search["kept_units"], search
        assert row.route == "litert-torch"


def test_kept_modules_stay_float_in_the_pt2e_program_of_both_routes():
    """ExecuTorch's XNNPACKQuantizer and TFLite's composition of it with litert-torch's take the same
    pre-annotation (TFLite runs end to end above; here the program itself, without lowering)."""
    from edgeport.quantize.pt2e import calibrated_int8, module_path, xnnpack_quantizer
    from edgeport.quantize.tflite_recipes import w8a8_quantizer

    torch.manual_seed(0)
    net, x = OutlierNet().eval(), (torch.rand(1, 3, 16, 16),)
    for quantizer in (xnnpack_quantizer(), w8a8_quantizer()):
        program = calibrated_int8(net, x, [x, x], quantizer, keep=("mix",))
        convs = [n for n in program.graph.nodes if n.op == "call_function" and "conv2d" in str(n.target)]
        fed = {module_path(n): [str(a.target) for a in n.all_input_nodes] for n in convs}
        assert any("dequantize_per_channel" in t for t in fed["spread"]), fed   # int8 weights where not kept
        assert not any("dequantize_per_channel" in t for t in fed["mix"]), fed  # float weights where kept
        assert "mix.weight" in fed["mix"]
