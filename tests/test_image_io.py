"""Photo in, photo out: the image I/O inside each format's file, `edgeport run` through every runtime, the
pictures in the reports, --io tensor and --photos."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import ALL_FORMATS, SMALL

pytestmark = pytest.mark.e2e


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_each_format_file_declares_its_image_io(tiny_export):
    import onnx

    from edgeport.exporters.tflite_metadata import read_tflite_metadata
    from edgeport.runtimes.coreml import import_coremltools

    root = tiny_export[0] / "realesrgan-x4plus"
    proto = onnx.load(str(root / "onnx-fp32" / "realesrgan-x4plus.onnx"))
    for value, shape in ((proto.graph.input[0], [1, 16, 16, 3]), (proto.graph.output[0], [1, 64, 64, 3])):
        t = value.type.tensor_type
        assert t.elem_type == onnx.TensorProto.UINT8 and [d.dim_value for d in t.shape.dim] == shape
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["edgeport.contract"])["io"] == "image" and "random init" in props["edgeport.license"]

    spec = import_coremltools().models.MLModel(str(root / "coreml-fp32" / "realesrgan-x4plus.mlpackage"),
                                              skip_model_load=True).get_spec()
    kinds = [f.type.WhichOneof("Type") for f in (*spec.description.input, *spec.description.output)]
    assert kinds == ["imageType", "imageType"] and spec.description.input[0].type.imageType.width == 16
    assert "edgeport.contract" in spec.description.metadata.userDefined and spec.description.metadata.author

    meta = read_tflite_metadata(root / "tflite-fp32" / "realesrgan-x4plus.tflite")
    image_in = meta.subgraphMetadata[0].inputTensorMetadata[0]
    assert meta.name == b"realesrgan-x4plus" and meta.minParserVersion == b"1.0.0"
    assert image_in.content.contentProperties.colorSpace == 1   # RGB in the metadata schema
    assert list(image_in.processUnits[0].options.std) == [255.0] * 3
    assert meta.subgraphMetadata[0].outputTensorMetadata[0].content.contentProperties.colorSpace == 1

    for fmt in ALL_FORMATS:
        m = _manifest(root / f"{fmt}-fp32")
        binding = m["artifact"]["inputs"][0]
        assert binding["io"] == "image" and binding["dtype"] == "uint8", (fmt, binding)
        assert binding["layout"] == ("NCHW" if fmt == "coreml" else "NHWC")
        assert {s["compared_as"] for s in m["parity"]["samples"]} == {"8-bit pixels"}
        assert m["parity"]["status"] == "pass" and (root / f"{fmt}-fp32" / "parity.png").is_file()
    report = (root / "report.md").read_text()
    assert "![realesrgan-x4plus tflite fp32" in report and "(tflite-fp32/parity.png)" in report


def test_run_upscales_a_photo_in_every_runtime_and_checks_its_seams(tiny_export, tmp_path, capsys):
    from edgeport.cli import main

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(photo)
    root = tiny_export[0] / "realesrgan-x4plus"
    results = {}
    for fmt in ALL_FORMATS:
        code = main(["run", str(root / f"{fmt}-fp32"), str(photo), "-o", str(tmp_path / "out"), "--overlap", "8",
                     "--margin", "2", "--json"] + (["--seam-check"] if fmt == "onnx" else []))
        payload = json.loads(capsys.readouterr().out)
        run = payload["runs"][0]
        assert run["mode"] == "tiled" and run["tiles"] == 20 and run["output_hw"] == [148, 180], run
        results[fmt] = np.asarray(Image.open(run["outputs"][0]))
        if fmt == "onnx":
            seam = payload["seam_check"]
            assert seam["crop_hw"] == [24, 24] and seam["tiles"] == 4 and seam["engine"].startswith("onnxruntime")
            assert code == (0 if seam["passed"] else 1) and seam["passed"] == (seam["bit_exact"] or seam["psnr_db"] >= 60)
        else:
            assert code == 0
    for fmt in ALL_FORMATS:   # one photo, four runtimes: the same picture within a level or two
        assert results[fmt].shape == (148, 180, 3)
        assert np.abs(results[fmt].astype(int) - results["onnx"]).max() <= 3, fmt


def test_tensor_io_and_team_photos(tmp_path, capsys):
    from edgeport.cli import main
    from edgeport.export.isolation import run_export
    from edgeport.export.plan import ExportPlan

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(photos / "mine.png")
    config, hw = SMALL["realesr-animevideov3"]
    summary = run_export(ExportPlan(model="realesr-animevideov3", formats=("onnx",), out_root=tmp_path / "a",
                                    config=config, input_hw=hw, io="tensor", photos_dir=photos))
    assert summary.rows[0].status == "pass"
    m = _manifest(tmp_path / "a" / "realesr-animevideov3" / "onnx-fp32")
    assert m["artifact"]["inputs"][0] | {"shape": None} == {"name": "image", "artifact_name": "image", "shape": None,
                                                             "layout": "NCHW", "dtype": "float32", "io": "tensor",
                                                             "pixels": None}
    assert [f["name"] for f in m["photos"]["files"]] == ["mine.png"] and m["photos"]["fit"] == "crop"
    assert "photo:team/mine.png" in [s["sample"] for s in m["parity"]["samples"]]
    assert {s["compared_as"] for s in m["parity"]["samples"]} == {"float values"}
    assert main(["check", str(tmp_path / "a"), "--quiet"]) == 0
    Image.fromarray(np.zeros((50, 40, 3), np.uint8)).save(photos / "mine.png")
    capsys.readouterr()
    assert main(["check", str(tmp_path / "a"), "--quiet"]) == 1
    assert "mine.png changed since export" in capsys.readouterr().out


def test_run_fills_a_hole_and_keeps_every_pixel_outside_it(tmp_path, capsys):
    from edgeport.cli import main
    from edgeport.export.isolation import run_export
    from edgeport.export.plan import ExportPlan

    config, hw = SMALL["inpaint-pconv"]
    (row,) = run_export(ExportPlan(model="inpaint-pconv", formats=("onnx",), out_root=tmp_path, config=config,
                                   input_hw=hw, recipes=("fp32",))).rows
    photo = np.random.default_rng(5).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    hole = np.zeros((40, 52), np.uint8)
    hole[10:20, 15:35] = 255
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(hole).save(tmp_path / "hole.png")
    capsys.readouterr()
    assert main(["run", row.path, str(tmp_path / "p.png"), "--mask", str(tmp_path / "hole.png"), "-o",
                 str(tmp_path / "out"), "--overlap", "16", "--margin", "4", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    filled = np.asarray(Image.open(run["outputs"][0]))
    assert run["composited_with_photo"] and filled.shape == photo.shape
    assert np.array_equal(filled[hole == 0], photo[hole == 0]) and not np.array_equal(filled[hole > 0], photo[hole > 0])
