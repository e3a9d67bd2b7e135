"""Recipes end to end: every format's native tooling, the per-recipe gates, calibration in the manifest,
the comparison with the fp32 artifact, error localisation when a recipe collapses."""
import json
from pathlib import Path

import pytest
import torch

from edgeport.export.isolation import run_export
from edgeport.export.plan import ExportPlan
from conftest import ALL_FORMATS, cli
from fragile_nets import OutlierNet

pytestmark = pytest.mark.e2e

RECIPES = ("fp32", "fp16", "w8", "w8a8", "palettize4", "prune50", "sparse50", "prune50+w8a8")
SRVGG = {"num_conv": 4, "num_feat": 32}   # 32x32x3x3 convs: large enough for 4-bit palettes


@pytest.fixture(scope="module")
def recipe_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes")
    plan = ExportPlan(model="realesr-general-x4v3", formats=ALL_FORMATS, out_root=out,
                      recipes=RECIPES, input_hw=(32, 32), config=SRVGG)
    return out, run_export(plan)


def test_every_recipe_exports_and_passes_its_gate_or_says_it_is_unsupported(recipe_export):
    _, summary = recipe_export
    rows = {(r.format, r.recipe): r for r in summary.rows}
    unsupported = {("onnx", "palettize4"), ("tflite", "palettize4"), ("onnx", "sparse50"), ("tflite", "sparse50"),
                   ("executorch", "fp16"), ("executorch", "w8"), ("executorch", "palettize4"),
                   ("executorch", "sparse50")}
    for key, row in rows.items():
        if key in unsupported:
            assert row.status == "unsupported" and "not supported for" in row.message and not row.path, row
        else:
            assert row.status == "pass", (key, row.message)
    assert summary.exit_code == 0
    gates = {"fp32": 60, "fp16": 40, "w8": 35, "w8a8": 30, "palettize4": 25, "prune50": 60, "sparse50": 60,
             "prune50+w8a8": 30}
    for (fmt, recipe), row in rows.items():
        if row.status == "pass":
            assert row.worst_psnr_db >= gates[recipe], row
    for fmt in ALL_FORMATS:
        fp32 = rows[fmt, "fp32"].bytes
        if fmt != "executorch":
            assert rows[fmt, "w8a8"].bytes < rows[fmt, "fp16"].bytes < fp32
            assert rows[fmt, "w8"].bytes < 0.5 * fp32
        assert rows[fmt, "w8a8"].bytes < 0.5 * fp32
        # int8 is lossy: a compressed artifact is measurably further from PyTorch than fp32 is
        assert rows[fmt, "w8a8"].worst_psnr_db < rows[fmt, "fp32"].worst_psnr_db
        assert rows[fmt, "w8a8"].vs_fp32_artifact_db is not None
        # pruned then int8: about half of w8a8's bytes, judged by w8a8's gate against the pruned model
        assert rows[fmt, "prune50+w8a8"].bytes < 0.7 * rows[fmt, "w8a8"].bytes
    assert rows["coreml", "palettize4"].bytes < rows["coreml", "w8"].bytes
    assert rows["coreml", "sparse50"].bytes < 0.8 * rows["coreml", "fp32"].bytes
    # one test over the export: split across xdist workers, each built the 80 s fixture
    _manifests_record_recipe_tooling_calibration_and_pruning(recipe_export)
    _check_rebuilds_pruned_references_and_passes(recipe_export)


def _manifests_record_recipe_tooling_calibration_and_pruning(recipe_export):
    out, _ = recipe_export
    folder = out / "realesr-general-x4v3"
    w8a8 = json.loads((folder / "onnx-w8a8" / "manifest.json").read_text())
    assert w8a8["recipe"]["calibration"]["count"] == 8 and w8a8["recipe"]["calibration"]["source"] == "bundled"
    assert "quantize_static" in w8a8["artifact"]["details"]["recipe"]["tool"]
    assert w8a8["parity"]["gate"]["min_psnr_db"] == 30
    coreml = json.loads((folder / "coreml-w8a8" / "manifest.json").read_text())
    assert "MIL evaluator" in coreml["artifact"]["details"]["recipe"]["activation_ranges"]
    assert coreml["artifact"]["details"]["minimum_deployment_target"] == "iOS17"
    tflite = json.loads((folder / "tflite-w8a8" / "manifest.json").read_text())
    assert tflite["artifact"]["details"]["delegation"]["xnnpack_partitions"] >= 1
    prune = json.loads((folder / "tflite-prune50" / "manifest.json").read_text())
    assert 0.45 <= prune["recipe"]["conv_macs_ratio"] <= 0.56
    assert prune["model"]["macs"] < 0.6 * json.loads((folder / "tflite-fp32" / "manifest.json").read_text())["model"]["macs"]
    assert prune["recipe"]["vs_original_pytorch_db"] < 60   # pruning without fine-tuning changes the model
    combo = json.loads((folder / "onnx-prune50+w8a8" / "manifest.json").read_text())
    assert combo["parity"]["gate"]["min_psnr_db"] == 30 and combo["recipe"]["calibration"]["count"] == 8
    assert combo["recipe"]["conv_macs_ratio"] == prune["recipe"]["conv_macs_ratio"]   # the same pruned model


def _check_rebuilds_pruned_references_and_passes(recipe_export):
    from edgeport.parity_tests.gate import ReferenceCache, check_artifact

    out, _ = recipe_export
    cache = ReferenceCache()
    for name in ("onnx-prune50", "coreml-sparse50", "tflite-w8a8", "tflite-prune50+w8a8", "executorch-w8a8"):
        check = check_artifact(out / "realesr-general-x4v3" / name / "manifest.json", cache)
        assert check.report.passed, (name, check.report.message)


def test_a_collapsed_recipe_names_the_layer_where_the_error_starts(tmp_path):
    from edgeport import api

    torch.manual_seed(0)
    summary = api.export(OutlierNet().eval(), inputs=[(1, 3, 16, 16)], to=["onnx", "coreml"],
                         recipes=["fp32", "w8a8"], out=tmp_path, name="outlier")
    coreml = {r.recipe: r for r in summary.rows if r.format == "coreml"}
    assert coreml["w8a8"].status == "parity-fail"
    found = json.loads((tmp_path / "outlier" / "coreml-w8a8" / "manifest.json").read_text())
    first = found["recipe"]["error_localization"]["first_bad"]
    assert first["tensor"] == "relu" and "int8" in first["op"], first   # the int8 round trip of the ReLU output
    rows = {r.recipe: r for r in summary.rows if r.format == "onnx"}
    assert rows["fp32"].status == "pass"
    assert rows["w8a8"].status == "parity-fail" and rows["w8a8"].worst_psnr_db < 20
    manifest = json.loads((tmp_path / "outlier" / "onnx-w8a8" / "manifest.json").read_text())
    where = manifest["recipe"]["error_localization"]
    assert where["compared_tensors"] > 0 and where["first_bad"] is not None
    assert where["first_bad"]["op"] in ("Relu", "QuantizeLinear", "DequantizeLinear", "Conv"), where
    assert "relu" in where["first_bad"]["tensor"].lower() or "conv" in where["first_bad"]["tensor"].lower()
    assert "error first passes 20 dB" in rows["w8a8"].message
    assert summary.exit_code == 1


def test_onnx2tf_route_reads_its_own_layout_and_reports_the_undelegated_int8_prelu(tmp_path):
    """The fallback route: its fp32 file's layout is read from the file (NHWC input), and the known hard
    case, the TF converter's int8 PRELU, is not taken by XNNPACK and splits the graph."""
    plan = ExportPlan(model="realesr-general-x4v3", formats=("tflite",), out_root=tmp_path, recipes=("fp32", "w8a8"),
                      input_hw=(16, 16), config={"num_conv": 2, "num_feat": 8}, options={"tflite_route": "onnx2tf"})
    fp32, row = run_export(plan).rows
    assert fp32.status == "pass" and fp32.route == "onnx2tf", fp32
    art = json.loads((Path(fp32.path) / "manifest.json").read_text())["artifact"]
    assert art["inputs"][0]["layout"] == "NHWC" and art["inputs"][0]["shape"] == [1, 16, 16, 3]
    assert art["outputs"][0]["layout"] in ("NCHW", "NHWC")
    assert row.route == "onnx2tf" and row.status == "pass", row.message
    details = json.loads((tmp_path / "realesr-general-x4v3" / "tflite-w8a8" / "manifest.json").read_text())
    delegation = details["artifact"]["details"]["delegation"]
    assert delegation["undelegated_ops"].get("PRELU", 0) >= 2 and delegation["xnnpack_partitions"] > 2
    assert "PRELU" in row.message and "partitions" in row.message


def test_calib_folder_is_used_and_counted_and_bad_ones_fail_cleanly(tmp_path, capsys):
    from PIL import Image

    from edgeport.models.samples import sample_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("rocket", "retina", "coins")):       # a team's own photos, any size
        Image.fromarray(sample_photo(name)[::4, ::4]).save(photos / f"p{i}.png")
    out = tmp_path / "out"
    proc = cli(capsys, "export", "realesr-general-x4v3", "--to", "onnx", "--recipe", "w8a8", "--calib", str(photos),
                "--input-size", "16x16", "--set", "num_conv=2", "--set", "num_feat=8", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    manifest = json.loads((out / "realesr-general-x4v3" / "onnx-w8a8" / "manifest.json").read_text())
    assert manifest["recipe"]["calibration"]["count"] == 3
    assert manifest["recipe"]["calibration"]["images"] == ["p0.png", "p1.png", "p2.png"]

    empty = tmp_path / "empty"
    empty.mkdir()
    for args, says in ((["--calib", str(empty)], "no images in"), (["--recipe", "int4"], "unknown recipe")):
        base = ["export", "realesr-general-x4v3", "--to", "onnx", "--input-size", "16x16", "--out",
                str(tmp_path / "bad"), "--quiet"]
        proc = cli(capsys, *base, *(["--recipe", "w8a8"] if "--calib" in args else []), *args)
        assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "bad").exists()


def test_a_model_that_cannot_be_pruned_gets_a_failed_row(tmp_path):
    from tests.conftest import SMALL

    config, hw = SMALL["inpaint-pconv"]
    summary = run_export(ExportPlan(model="inpaint-pconv", formats=("onnx",), out_root=tmp_path,
                                    recipes=("prune50",), input_hw=hw, config=config))
    (row,) = summary.rows
    assert row.status == "recipe-failed" and "prune50 cannot be applied" in row.message
    assert summary.exit_code == 1


def test_tflite_w8_falls_back_to_weight_only_when_dynamic_range_cannot_prepare(tmp_path):
    """ai-edge-quantizer's dynamic-range recipe writes a conv LiteRT refuses on the saliency net (MobileNet +
    attention); the exporter must notice and ship weight-only int8 instead, saying so."""
    from tests.conftest import SMALL

    config, hw = SMALL["saliency-mobilenet"]
    (row,) = run_export(ExportPlan(model="saliency-mobilenet", formats=("tflite",), out_root=tmp_path,
                                   recipes=("w8",), input_hw=hw, config=config)).rows
    assert row.status != "export-failed" and row.worst_psnr_db is not None, row.message
    manifest = json.loads((tmp_path / "saliency-mobilenet" / "tflite-w8" / "manifest.json").read_text())
    recipe = manifest["artifact"]["details"]["recipe"]
    assert "failed to prepare" in recipe["fallback_from"] and "weight-only" in recipe["activations"]
    assert "fell back to weight-only int8" in row.message


@pytest.mark.parametrize("io", ["image", "tensor"])
def test_qat_exports_and_passes_in_tflite_and_executorch_under_both_io_modes(tmp_path, monkeypatch, io):
    """TFLite's QAT fine-tune trains the float module and the pixel conversion goes around the quantized
    program (an 8-bit image output has no gradient: it failed with `mean(): ... Got: Byte` before). A short
    fine-tune: the test is about the route, not about what 150 steps reach."""
    import edgeport.quantize.pt2e as pt2e

    monkeypatch.setenv("EDGEPORT_IN_PROCESS", "1")   # the patch lives in this process
    monkeypatch.setattr(pt2e, "QAT_STEPS", 6)
    summary = run_export(ExportPlan(model="realesr-general-x4v3", formats=("tflite", "executorch"), out_root=tmp_path,
                                    recipes=("w8a8+qat",), input_hw=(16, 16), io=io,
                                    config={"num_conv": 2, "num_feat": 16}))
    rows = {r.format: r for r in summary.rows}
    assert all(r.status == "pass" for r in rows.values()), [(r.format, r.message) for r in rows.values()]
    for fmt, row in rows.items():
        manifest = json.loads((Path(row.path) / "manifest.json").read_text())
        recipe = manifest["artifact"]["details"]["recipe"]
        assert 0 < recipe["qat"]["steps"] <= 6 and recipe["io"] == ("uint8 images" if io == "image" else "float32")
        assert {b["dtype"] for b in manifest["artifact"]["inputs"]} == {"uint8" if io == "image" else "float32"}
    # one quantized program, two converters: the same numbers in both runtimes
    assert abs(rows["tflite"].worst_psnr_db - rows["executorch"].worst_psnr_db) < 1.0
