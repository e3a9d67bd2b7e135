import pytest
import torch
import torch.nn.functional as F

from edgeport.models import ModelError, all_specs, get_spec
from edgeport.models.profile import profile_model
from edgeport.models.realesrgan.rrdbnet import RRDBNet, basicsr_pixel_unshuffle
from edgeport.models.realesrgan.srvgg import SRVGGNetCompact


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


@pytest.mark.parametrize("name", sorted(all_specs()))
def test_every_spec_builds_parity_inputs_from_real_photos(name):
    spec = get_spec(name)
    samples = spec.make_inputs(spec.inputs, 0)
    labels = [s.label for s in samples]
    assert sum("photo" in label.split(":")[0] for label in labels) == 3, labels
    assert labels[-1] == "random:seed=0"
    for s in samples:
        for contract in spec.inputs:
            arr = s.arrays[contract.name]
            assert arr.shape == contract.shape and arr.dtype.name == "float32"
            lo, hi = contract.value_range
            slack = 0.5 if s.label.startswith("noisy") else 0.0   # Gaussian noise leaves the clean range
            assert lo - slack <= arr.min() and arr.max() <= hi + slack, (s.label, contract.name)
    first = samples[0].arrays[spec.inputs[0].name]
    assert first.std() > 0.05  # a real image, not a constant


@pytest.mark.parametrize("name", sorted(all_specs()))
def test_random_init_references_vary_with_the_input_and_are_not_clamped(name):
    """Parity on a saturated or input-independent output compares constants: every zoo model's random-init
    output must vary over the image, differ between photos, and stay off its clamp."""
    from conftest import SMALL
    from edgeport.models.source import instantiate, resolve_inputs, source_for
    from edgeport.parity_tests.metrics import compare

    spec = get_spec(name)
    small, hw = SMALL[name]
    model = instantiate(spec, source_for(spec, small, None, seed=0))
    contracts = resolve_inputs(spec, hw, small)
    outputs = []
    for sample in spec.make_inputs(contracts, 0):
        with torch.no_grad():
            ref = model(*[torch.from_numpy(sample.arrays[c.name]) for c in contracts]).numpy()
        assert ref.std() > 1e-3, sample.label
        if not sample.label.startswith("random:"):   # noise may rightly map to a clamp (zero depth); photos not
            assert compare(ref, ref).reference_saturation < 0.25, sample.label
        outputs.append(ref)
    # saliency maps share a strong centre prior by design, so photos differ by less than restorations do
    change = float(abs(outputs[0] - outputs[1]).mean() / outputs[0].std())
    assert change > 0.05, f"output barely depends on the input ({change:.3f} of its std)"
    # well-conditioned: a 1e-6 nudge to the input must not move PyTorch's own output past what the gates
    # demand, or no runtime could pass them (a chaotic init once made saliency 27 dB from itself)
    first = [torch.from_numpy(spec.make_inputs(contracts, 0)[0].arrays[c.name]) for c in contracts]
    nudged = [x + 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) for x in first]
    with torch.no_grad():
        stability = compare(model(*first).numpy(), model(*nudged).numpy()).psnr_db
    assert stability > 80, f"PyTorch's own output moves to {stability:.1f} dB under a 1e-6 input change"
