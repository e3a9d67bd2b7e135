"""The seed apps as `edgeport run` pipelines: selection grammar and compositing on plain arrays (fast), then
the selection upscaler on real artifacts of every format, judged against the same pipeline on PyTorch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli
from edgeport.errors import UsageError
from edgeport.photo.compositing import Background, BandResize, blend
from edgeport.photo.selection import Selection, feathered, selection_alpha

TILING = ["--overlap", "6", "--margin", "2"]   # the tiny export's 16x16 tiles


@pytest.mark.parametrize("text,kind,points", [
    ("rect:10,20,30,40", "rect", ((10, 20), (30, 40))),
    ("polygon:0,0,10,0,5,8", "polygon", ((0, 0), (10, 0), (5, 8))),
    ("subject", "subject", ()), ("subject:12,7", "subject", ((12, 7),)),
])
def test_selections_parse(text, kind, points):
    found = Selection.parse(text)
    assert (found.kind, found.points) == (kind, points) and str(Selection.parse(str(found))) == str(found)


@pytest.mark.parametrize("text,says", [
    ("circle:1,2,3", "a selection is rect"), ("rect:1,2,3", "four numbers"), ("rect:1,2,0,4", "above 0"),
    ("polygon:1,2,3,4", "at least 3 points"), ("rect:a,b,c,d", "numbers in photo pixels"), ("mask:", "mask image"),
])
def test_bad_selections_say_what_is_accepted(text, says):
    with pytest.raises(ValueError, match=says):
        Selection.parse(text)


def test_backgrounds_parse_and_apply():
    rows = np.full((2, 3, 3), 200.0, np.float32)
    assert np.array_equal(Background.parse("keep").apply(rows), rows)
    assert np.allclose(Background.parse("darken:0.6").apply(rows), 80.0)
    assert np.all(Background.parse("white").apply(rows) == 255) and Background.parse("darken").amount == 0.5
    for bad in ("darken:1.5", "grey", "white:0.2", "darken:x"):
        with pytest.raises(ValueError):
            Background.parse(bad)


def test_alpha_is_one_inside_zero_outside_and_ramps_across_a_feathered_edge():
    hard = selection_alpha(Selection.parse("rect:10,10,20,20"), (50, 60))
    assert hard.sum() == 400 and hard[10:30, 10:30].all() and not hard[:10].any()
    soft = selection_alpha(Selection.parse("rect:10,10,20,20"), (50, 60), feather=8)
    assert soft[20, 20] == 1.0 and soft[20, 0] == 0.0 and 0.3 < soft[20, 10] < 0.7
    ramp = soft[20, 2:19]
    assert np.all(np.diff(ramp) >= 0) and ramp[0] == 0 and ramp[-1] == 1     # monotone across the edge
    tri = selection_alpha(Selection.parse("polygon:5,5,45,5,25,40"), (50, 60))
    assert tri[10, 25] == 1 and tri[45, 25] == 0 and tri[10, 5] == 0
    clipped = selection_alpha(Selection.parse("rect:50,40,100,100"), (50, 60))   # past the edge: clipped
    assert clipped.sum() == 10 * 10


@pytest.mark.parametrize("selection,given,says", [
    ("rect:100,100,5,5", None, "selects nothing"), ("polygon:1,1,70,1,5,5", None, "outside the 60x50 photo"),
    ("mask:m.png", np.zeros((50, 60), bool), "selects nothing"), ("mask:m.png", np.ones((50, 60), bool), "whole"),
    ("subject", None, "--subject-model"),
])
def test_a_selection_that_misses_or_takes_everything_is_refused(selection, given, says):
    with pytest.raises(UsageError, match=says):
        selection_alpha(Selection.parse(selection), (50, 60), given=given)


def test_the_most_salient_region_is_the_area_around_the_peak_above_half_of_it():
    from edgeport.photo.subject import _salient_region

    saliency = np.zeros((40, 50), np.float32)
    saliency[5:15, 5:20] = 0.8           # a second, weaker object: not the subject
    saliency[20:35, 25:45] = 0.7
    saliency[27, 33] = 1.0               # the peak
    region = _salient_region(saliency)
    assert region[21, 26] and region[27, 33] and not region[10, 10] and region.sum() == 15 * 20


def test_band_resizes_are_the_rows_of_one_resize_and_blend_keeps_the_background_where_alpha_is_zero():
    photo = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    bands = BandResize(photo, (148, 212), Image.Resampling.BICUBIC)
    whole = bands.rows(0, 148)
    assert np.abs(np.concatenate([bands.rows(0, 50), bands.rows(50, 51), bands.rows(51, 148)]) - whole).max() < 1e-3
    inside = np.zeros((37, 53), bool)
    inside[10:25, 12:40] = True
    alpha = feathered(inside, 4.0)
    out = blend(np.zeros((37, 53, 3), np.float32), photo.astype(np.float32), alpha)
    assert np.array_equal(out[alpha == 0], photo[alpha == 0]) and np.all(out[alpha == 1] == 0)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from edgeport.models.samples import sample_photo

    path = tmp_path_factory.mktemp("photo") / "rocket.png"
    Image.fromarray(np.asarray(Image.fromarray(sample_photo("rocket")).resize((64, 48)))).save(path)
    return path


def _run(capsys, art: Path, photo: Path, out: Path, *options: str) -> dict:
    proc = cli(capsys, "run", art, photo, "-o", out, "--json", *TILING, *options)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["runs"][0]


@pytest.mark.e2e
def test_a_selection_runs_only_its_tiles_matches_the_whole_run_inside_and_the_formula_outside(
        tiny_export, photo, tmp_path, capsys):
    art = tiny_export[0] / "realesrgan-x4plus" / "onnx-fp32"
    whole = _run(capsys, art, photo, tmp_path / "whole")
    sel = _run(capsys, art, photo, tmp_path / "sel", "--select", "rect:8,6,12,10", "--background", "darken:0.6",
               "--feather", "2")
    assert sel["mode"] == "selection" and 0 < sel["tiles"] < sel["tiles_whole_photo"] == whole["tiles"]
    full = np.asarray(Image.open(whole["outputs"][0]))
    got = np.asarray(Image.open(sel["outputs"][0]))
    assert got.shape == full.shape == (192, 256, 3)
    alpha = BandResize(selection_alpha(Selection.parse("rect:8,6,12,10"), (48, 64), 2.0), (192, 256),
                       Image.Resampling.BILINEAR).rows(0, 192)
    inside, outside = alpha >= 1.0, alpha <= 0.0
    assert inside.sum() > 500 and np.array_equal(got[inside], full[inside])     # exactly the whole run's
    plain = BandResize(np.asarray(Image.open(photo)), (192, 256), Image.Resampling.BICUBIC).rows(0, 192)
    formula = np.clip(np.rint(plain * 0.4), 0, 255)
    assert np.abs(got[outside].astype(float) - formula[outside]).max() <= 1


@pytest.mark.e2e
def test_selection_pipeline_parity_in_every_format(tiny_export, photo):
    """The app's final picture from each format's artifact against the same pipeline on PyTorch."""
    from edgeport.photo.artifact import load_artifact
    from edgeport.photo.pipeline_parity import pipeline_parity
    from edgeport.photo.run import RunOptions
    from edgeport.photo.upscale_selection import SelectionJob, outside_difference, run_selection_upscale

    job = SelectionJob(Selection.parse("polygon:5,5,50,8,30,40"), Background.parse("white"), 3.0)

    def run(art, folder):
        return run_selection_upscale(art, photo, RunOptions(folder, overlap=6, margin=2), job, folder / "out.png")

    found = {}
    for folder in sorted((tiny_export[0] / "realesrgan-x4plus").glob("*-*")):
        art = load_artifact(folder, 2)
        found[folder.name] = pipeline_parity("upscale-selection", art, run, lambda got, _: {
            "outside_max_diff": outside_difference(art, photo, job, got)})
    assert set(found) == {"onnx-fp32", "tflite-fp32", "coreml-fp32", "coreml-fp16", "executorch-fp32"}
    for name, parity in found.items():
        assert parity.measures["outside_max_diff"] <= 1, (name, parity.measures)
        if name.endswith("fp32"):
            assert parity.gate_db == 40 and parity.passed, (name, parity.to_dict())
        else:
            assert parity.gate_db is None and parity.picture.psnr_db > 20, (name, parity.to_dict())
    assert "MIL evaluator" in found["coreml-fp32"].engine and "ExecuTorch" in found["executorch-fp32"].engine


@pytest.mark.e2e
@pytest.mark.parametrize("options,says", [
    (["--select", "rect:500,500,10,10"], "selects nothing"),
    (["--select", "polygon:1,1,2,2"], "at least 3 points"),
    (["--select", "mask:{white}"], "selects the whole"),
    (["--select", "mask:{black}"], "selects nothing"),
    (["--select", "subject:5,5", "--subject-model", "{art}"], "segmenter or a saliency artifact"),
    (["--select", "subject"], "go together"), (["--select", "rect:1,1,5,5", "--subject-model", "{art}"], "leave it out"),
])
def test_bad_selections_are_one_line_exit_2_and_nothing_written(tiny_export, photo, tmp_path, capsys, options, says):
    art = tiny_export[0] / "realesrgan-x4plus" / "onnx-fp32"
    for name, level in (("white", 255), ("black", 0)):
        Image.fromarray(np.full((48, 64), level, np.uint8)).save(tmp_path / f"{name}.png")
    filled = [o.format(white=tmp_path / "white.png", black=tmp_path / "black.png", art=art) for o in options]
    out = tmp_path / "out"
    proc = cli(capsys, "run", art, photo, "-o", out, *TILING, *filled)
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def holes(tmp_path_factory) -> tuple[Path, Path]:
    """A 160x120 photo (5x the reduced inpainter's 32x32) and a mask with two holes of different sizes."""
    from edgeport.models.samples import sample_photo

    folder = tmp_path_factory.mktemp("holes")
    Image.fromarray(sample_photo("astronaut")).resize((160, 120), Image.Resampling.BICUBIC).save(folder / "photo.png")
    mask = np.zeros((120, 160), np.uint8)
    mask[30:60, 40:80] = 255           # a large hole
    mask[90:96, 120:130] = 255         # a small one
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "photo.png", folder / "mask.png"


@pytest.mark.e2e
@pytest.mark.parametrize("strategy", ["resize", "crop", "shrink", "two-step"])
def test_every_hd_strategy_fills_only_the_hole(pconv_export, holes, tmp_path, capsys, strategy):
    art = pconv_export[0] / "inpaint-pconv" / "onnx-fp32"
    photo, mask = holes
    proc = cli(capsys, "run", art, photo, "--mask", mask, "--hd", strategy, "-o", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)["runs"][0]
    assert run["mode"] == f"hd-{strategy}" and run["hole_regions"] == 2
    assert run["passes"] == (4 if strategy == "shrink" else 1)
    got, before = np.asarray(Image.open(run["outputs"][0])), np.asarray(Image.open(photo))
    hole = np.asarray(Image.open(mask)) > 0
    assert got.shape == before.shape and np.array_equal(got[~hole], before[~hole])    # byte for byte
    assert (got[hole] != before[hole]).any()


@pytest.mark.e2e
def test_hd_inpainting_pipeline_parity_in_every_format(pconv_export, holes):
    """two-step (model size with shrink, then 2x tiled on the rims): the hole against the PyTorch pipeline."""
    from edgeport.photo.artifact import load_artifact
    from edgeport.photo.inpaint_hd import HdJob, hole_measures, run_hd_inpaint
    from edgeport.photo.pipeline_parity import pipeline_parity

    photo, mask = holes
    before, hole = np.asarray(Image.open(photo)), np.asarray(Image.open(mask)) > 0
    job = HdJob("two-step", passes=2)
    found = {}
    for folder in sorted((pconv_export[0] / "inpaint-pconv").glob("*-fp32")):
        art = load_artifact(folder, 2)
        found[folder.name] = pipeline_parity("inpaint-hd", art, lambda a, out: run_hd_inpaint(
            a, photo, mask, job, out / "filled.png"), lambda got, ref: hole_measures(before, hole, got, ref))
    assert set(found) == {"onnx-fp32", "tflite-fp32", "coreml-fp32", "executorch-fp32"}
    for name, parity in found.items():
        assert parity.measures["outside_changed_pixels"] == 0, name
        hole_db = parity.measures["hole_psnr_db"]
        assert hole_db is None or hole_db >= 40, (name, parity.to_dict())    # None: identical


@pytest.mark.e2e
@pytest.mark.parametrize("args,says", [
    (["--hd", "crop"], "--hd fills the holes of --mask"),
    (["--hd", "crop", "--mask", "{black}"], "has no hole"),
    (["--hd", "crop", "--mask", "{white}"], "covers the whole photo"),
    (["--hd", "shrink", "--passes", "0", "--mask", "{mask}"], "a count of 1 or more"),
    (["--hd", "crop", "--mask", "{mask}", "--select", "rect:1,1,4,4"], "give one of them"),
])
def test_bad_hd_requests_are_one_line(pconv_export, holes, tmp_path, capsys, args, says):
    art = pconv_export[0] / "inpaint-pconv" / "onnx-fp32"
    for name, level in (("white", 255), ("black", 0)):
        Image.fromarray(np.full((120, 160), level, np.uint8)).save(tmp_path / f"{name}.png")
    filled = [a.format(white=tmp_path / "white.png", black=tmp_path / "black.png", mask=holes[1]) for a in args]
    proc = cli(capsys, "run", art, holes[0], "-o", tmp_path / "out", *filled)
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_hd_on_a_model_that_does_not_inpaint_is_refused(tiny_export, holes, tmp_path, capsys):
    proc = cli(capsys, "run", tiny_export[0] / "realesrgan-x4plus" / "onnx-fp32", holes[0], "--mask", holes[1],
               "--hd", "resize", "-o", tmp_path / "out")
    assert proc.returncode == 2 and "not an inpainting one" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
