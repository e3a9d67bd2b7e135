import pytest
import torch
import torch.nn.functional as F

from models import ModelError, all_specs, get_spec
from models.profile import profile_model
from models.realesrgan.rrdbnet import RRDBNet, basicsr_pixel_unshuffle
from models.realesrgan.srvgg import SRVGGNetCompact


def _meta_state(factory, **kw):
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in factory(**kw).state_dict().items()}


def test_rrdbnet_x4plus_has_upstream_key_layout():
    keys = _meta_state(RRDBNet, scale=4, num_block=23)
    assert keys["conv_first.weight"] == (64, 3, 3, 3)
    assert keys["body.0.rdb1.conv1.weight"] == (32, 64, 3, 3)
    assert keys["body.0.rdb1.conv5.weight"] == (64, 192, 3, 3)
    assert keys["body.22.rdb3.conv5.bias"] == (64,)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"):
        assert f"{name}.weight" in keys
    assert "body.23.rdb1.conv1.weight" not in keys


def test_rrdbnet_x2plus_folds_input_into_12_channels():
    assert _meta_state(RRDBNet, scale=2, num_block=1)["conv_first.weight"] == (64, 12, 3, 3)


def test_srvgg_general_x4v3_has_upstream_key_layout():
    keys = _meta_state(SRVGGNetCompact, num_conv=32)
    assert keys["body.0.weight"] == (64, 3, 3, 3)
    assert keys["body.1.weight"] == (64,)            # PReLU, one slope per channel
    assert keys["body.66.weight"] == (48, 64, 3, 3)  # 3 * 4 * 4 channels into PixelShuffle(4)
    assert "body.67.weight" not in keys


@pytest.mark.parametrize("name,params_m,gmac_at_64", [
    ("realesrgan-x4plus", 16.70, 73.4),
    ("realesr-general-x4v3", 1.21, 4.95),
])
def test_full_size_params_and_macs_match_published_figures(name, params_m, gmac_at_64):
    spec = get_spec(name)
    prof = profile_model(spec.build, [(1, 3, 64, 64)])
    assert prof.params / 1e6 == pytest.approx(params_m, abs=0.01)
    assert prof.macs / 1e9 == pytest.approx(gmac_at_64, rel=0.01)


def test_pixel_unshuffle_is_bit_identical_to_basicsr_rank6_view():
    x = torch.randn(2, 3, 12, 16)
    for scale in (2, 4):
        assert torch.equal(F.pixel_unshuffle(x, scale), basicsr_pixel_unshuffle(x, scale))


def test_outputs_are_clamped_and_upscaled():
    torch.manual_seed(0)
    model = RRDBNet(scale=2, num_block=1, num_feat=8, num_grow_ch=4).eval()
    y = model(torch.rand(1, 3, 8, 10))
    assert y.shape == (1, 3, 16, 20)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelError, match="did you mean realesrgan-x4plus"):
        get_spec("realesrgan-x4")


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(ModelError, match="no setting num_blocks; settings: .*num_block"):
        get_spec("realesrgan-x4plus").build(num_blocks=2)


def test_every_spec_builds_its_inputs_from_real_photos():
    for spec in all_specs().values():
        samples = spec.make_inputs(spec.inputs, 0)
        labels = [s.label for s in samples]
        assert any(label.startswith("photo:") for label in labels)
        assert labels[-1] == "random:seed=0"
        for s in samples:
            arr = s.arrays[spec.inputs[0].name]
            assert arr.shape == spec.inputs[0].shape and arr.dtype.name == "float32"
            assert 0.0 <= arr.min() and arr.max() <= 1.0
        photo = samples[0].arrays[spec.inputs[0].name]
        assert photo.std() > 0.05  # a real image, not a constant


@pytest.mark.parametrize("name", sorted(all_specs()))
def test_random_init_references_are_not_mostly_clamped(name):
    """Parity on a saturated output compares constants: every zoo model's random-init output must vary."""
    from models.source import instantiate, source_for
    from parity_tests.metrics import compare

    spec = get_spec(name)
    small = {k: v for k, v in {"num_block": 2, "num_conv": 4}.items() if k in spec.config}
    model = instantiate(spec, source_for(spec, small, None, seed=0))
    contracts = tuple(c.with_hw(32, 32) for c in spec.inputs)
    for sample in spec.make_inputs(contracts, 0):
        with torch.no_grad():
            ref = model(*[torch.from_numpy(sample.arrays[c.name]) for c in contracts]).numpy()
        assert compare(ref, ref).reference_saturation < 0.25, sample.label
