"""The seed zoo beyond Real-ESRGAN: upstream layouts, published sizes, loaders, export-friendly rewrites, exports."""
import json
from pathlib import Path

import pytest
import torch

from conftest import ALL_FORMATS, SMALL
from edgeport.export.isolation import run_export
from edgeport.export.plan import ExportPlan
from edgeport.models import CheckpointError, ModelError, get_spec
from edgeport.models.profile import profile_model
from edgeport.models.source import instantiate, resolve_inputs, source_for

NEW_MODELS = ["denoise-dncnn-gray", "denoise-dncnn-color", "inpaint-gmcnn", "inpaint-pconv", "deblur-r2attunet",
              "interactive-segmenter", "saliency-mobilenet", "depth-fcrn-mobilenet", "depth-fcrn"]


def _meta_shapes(name, **overrides):
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in get_spec(name).build(**overrides).state_dict().items()}


@pytest.mark.parametrize("name,expected", [
    ("denoise-dncnn-gray", {"model.0.weight": (64, 1, 3, 3), "model.2.weight": (64, 64, 3, 3),
                            "model.32.weight": (1, 64, 3, 3)}),
    ("denoise-dncnn-color", {"model.0.weight": (64, 3, 3, 3), "model.38.weight": (3, 64, 3, 3)}),
    ("inpaint-gmcnn", {"EB1.0.weight": (32, 4, 7, 7), "EB2.13.weight": (64, 128, 5, 5),
                       "EB3.17.weight": (32, 32, 3, 3), "decoding_layers.1.weight": (3, 16, 3, 3)}),
    ("deblur-r2attunet", {"RRCNN1.Conv_1x1.weight": (64, 3, 1, 1), "RRCNN1.RCNN.0.conv.0.weight": (64, 64, 3, 3),
                          "Att5.W_g.0.weight": (256, 512, 1, 1), "Up5.up.1.weight": (512, 1024, 3, 3)}),
    ("inpaint-pconv", {"enc_1.conv.weight": (64, 3, 7, 7), "enc_2.bn.running_var": (128,),
                       "dec_1.conv.bias": (3,), "dec_7.conv.weight": (512, 1024, 3, 3)}),
])
def test_upstream_key_layout(name, expected):
    shapes = _meta_shapes(name)
    for key, shape in expected.items():
        assert shapes[key] == shape, key
    if name == "denoise-dncnn-gray":
        assert "model.34.weight" not in shapes and "model.1.weight" not in shapes  # BN folded, as released


@pytest.mark.parametrize("name,params_m,gmac", [
    ("denoise-dncnn-gray", 0.56, None), ("denoise-dncnn-color", 0.67, None),
    ("inpaint-gmcnn", 12.56, 67.2), ("deblur-r2attunet", 39.4, 154.0),
])
def test_full_size_matches_published_figures(name, params_m, gmac):
    spec = get_spec(name)
    prof = profile_model(spec.build, [c.shape for c in spec.inputs])
    assert prof.params / 1e6 == pytest.approx(params_m, abs=0.01 if params_m < 1 else 0.05)
    if gmac:
        assert prof.macs / 1e9 == pytest.approx(gmac, rel=0.01)


@pytest.mark.parametrize("name,wrap", [
    ("denoise-dncnn-gray", lambda s: s), ("denoise-dncnn-color", lambda s: {"params": s}),
    ("inpaint-gmcnn", lambda s: s), ("inpaint-gmcnn", lambda s: {f"module.{k}": v for k, v in s.items()}),
    ("inpaint-pconv", lambda s: {"model": s}), ("deblur-r2attunet", lambda s: s),
    ("saliency-mobilenet", lambda s: s), ("depth-fcrn-mobilenet", lambda s: {"state_dict": s}),
    ("depth-fcrn", lambda s: s),
])
def test_loader_reads_upstream_layout_checkpoint(name, wrap, tmp_path):
    spec = get_spec(name)
    small, _ = SMALL[name]
    torch.manual_seed(11)
    state = spec.build(**small).state_dict()
    torch.save(wrap(state), tmp_path / "w.pth")
    model = instantiate(spec, source_for(spec, small, tmp_path / "w.pth", seed=0))
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    first = next(iter(state))
    del state[first]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=f"missing {first}"):
        instantiate(spec, source_for(spec, small, tmp_path / "bad.pth", seed=0))


def test_partial_conv_rewrite_is_identical_to_nvidia_formulation():
    from edgeport.models.inpaint.pconv import PartialConv2d, reference_partial_conv

    torch.manual_seed(0)
    x = torch.randn(1, 6, 20, 20)
    mask = (torch.rand(1, 6, 20, 20) > 0.3).float()
    mask[:, 3:] = (torch.rand(1, 3, 20, 20) > 0.5).float()   # channels differ, as after a skip concat
    mask[:, :, 5:15, 5:15] = 0                                # and a hole wider than any kernel
    for k, stride, bias in [(3, 1, True), (5, 2, False), (7, 2, False), (3, 2, True)]:
        layer = PartialConv2d(6, 8, k, stride, k // 2, bias=bias)
        out, new_mask = layer(x, mask)
        ref, ref_mask = reference_partial_conv(layer, x, mask)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
        assert torch.equal(new_mask, ref_mask)
        assert (new_mask == 0).any()  # the test really has windows with no valid pixel


def test_partial_conv_reference_epsilon_gives_nan_in_fp16_ours_does_not():
    from edgeport.models.inpaint.pconv import PartialConv2d

    coverage = torch.tensor([0.0, 1.0, 9.0], dtype=torch.float16)
    update = coverage.clamp(0, 1)
    reference = (9.0 / (coverage + torch.tensor(1e-8, dtype=torch.float16))) * update
    assert torch.isnan(reference[0])                          # 1e-8 underflows to 0: inf * 0
    ours = (update * 9.0) / coverage.clamp(min=1.0)
    assert torch.isfinite(ours).all() and ours.tolist() == [0.0, 9.0, 1.0]
    layer = PartialConv2d(3, 4, 3, 1, 1, bias=True).half()
    x, mask = torch.rand(1, 3, 8, 8).half(), torch.zeros(1, 3, 8, 8).half()
    mask[..., :4] = 1
    out, _ = layer(x, mask)
    assert torch.isfinite(out).all()


def test_recurrent_block_applies_its_one_conv_t_plus_one_times():
    from edgeport.models.deblur import Recurrent_block

    block = Recurrent_block(4, t=2).eval()
    calls = []
    block.conv.register_forward_hook(lambda *a: calls.append(1))
    block(torch.rand(1, 4, 8, 8))
    assert len(calls) == 3


@pytest.mark.parametrize("name,hw,needle", [
    ("inpaint-gmcnn", (100, 100), "multiples of 4 and at least 196"),
    ("deblur-r2attunet", (40, 40), "multiples of 16"),
    ("inpaint-pconv", (96, 96), "multiples of 128"),
])
def test_size_rules_explain_what_fits(name, hw, needle):
    with pytest.raises(ModelError, match=needle):
        resolve_inputs(get_spec(name), hw)


# Core ML fp16 below the 40 dB gate, measured (not assumed) and reported as parity-fail by the export; the
# gate is not loosened for them. Error grows with depth, with no overflow (README, "Known limits"):
# depth-fcrn 35.1 dB and depth-fcrn-mobilenet 32.6 dB at full size; 29.2 / 27.2 dB at these reduced configs.
FP16_BELOW_GATE = {"depth-fcrn", "depth-fcrn-mobilenet"}


# ExecuTorch's XNNPACK lowering takes 12-20 s per model for these graphs even at the reduced configs, so the
# suite lowers two light ones (the two-input inpainter and the segmenter; tests/test_recipes.py lowers an
# upscaler at every recipe); the deep graphs are lowered at full size by `edgeport export --all` (README,
# "Formats").
EXECUTORCH_LOWERED_IN_TESTS = ("inpaint-pconv", "interactive-segmenter")


@pytest.mark.e2e
@pytest.mark.parametrize("name", NEW_MODELS)
def test_exports_and_passes_parity_in_every_format(name, tmp_path, request):
    """fp32 in every format; Core ML fp16 where it is the known limit (depth). Core ML fp16 itself is judged
    per architecture by the corpus test and per op by the MIL op corpus, so the loop does not repeat it. The
    partial-conv export is the session's (the inpainting pipelines run on it too)."""
    small, hw = SMALL[name]
    formats = ALL_FORMATS if name in EXECUTORCH_LOWERED_IN_TESTS else ALL_FORMATS[:3]
    recipes = None if name in FP16_BELOW_GATE else ("fp32",)
    if name == "inpaint-pconv":
        summary = request.getfixturevalue("pconv_export")[1]
    else:
        summary = run_export(ExportPlan(model=name, formats=formats, out_root=tmp_path, input_hw=hw, config=small,
                                        recipes=recipes))
    expected = [(f, "fp32") for f in formats]
    if recipes is None:
        expected.insert(3, ("coreml", "fp16"))
    assert [(r.format, r.recipe) for r in summary.rows] == expected
    for row in summary.rows:
        if row.recipe == "fp16" and name in FP16_BELOW_GATE:
            assert row.status == "parity-fail" and "< 40 dB" in row.message, (row.status, row.message)
            assert 20 < row.worst_psnr_db < 40, row.worst_psnr_db   # measurably lossy, not collapsed
            continue
        assert row.status == "pass", (row.format, row.recipe, row.message)
    if name == "interactive-segmenter":   # the task metric is reported beside the raw error
        parity = json.loads((Path(summary.rows[0].path) / "manifest.json").read_text())["parity"]
        assert parity["task_worst"]["mask_iou"] >= 0.99 and len(parity["task"]) == 4
    if name == "inpaint-pconv":   # two inputs: each bound to the right artifact tensor
        art = json.loads((Path(summary.rows[1].path) / "manifest.json").read_text())["artifact"]
        assert [b["name"] for b in art["inputs"]] == ["image", "mask"]
