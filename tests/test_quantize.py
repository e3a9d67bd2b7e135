"""quantize/: recipe names, structured and unstructured pruning, and the compressed-weight MIL ops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeport.quantize.prune import PruneError, prune_channels
from edgeport.quantize.recipes import RecipeError, parse_recipe, parse_recipes
from edgeport.quantize.variants import zero_smallest_weights


def test_recipe_names_parse_and_bad_ones_list_the_valid_ones():
    assert [r.name for r in parse_recipes("fp32, w8a8,prune50,fp32")] == ["fp32", "w8a8", "prune50"]
    assert parse_recipe("prune30").prune_percent == 30 and parse_recipe("prune30").export_precision == "fp32"
    assert parse_recipe("sparse75").export_precision == "sparse"
    assert parse_recipe("w8a8").needs_calibration and not parse_recipe("w8").needs_calibration
    for bad in ("int4", "prune0", "prune100", "palettize3"):
        with pytest.raises(RecipeError, match="recipes: fp32, fp16, w8, w8a8"):
            parse_recipe(bad)
    combo = parse_recipe("prune50+w8a8")
    assert (combo.prune_percent, combo.export_precision, combo.gate({}).min_psnr_db, combo.module_part) == (
        50, "w8a8", 30.0, "prune50")
    assert parse_recipe("prune50").gate({"w8a8": None}).min_psnr_db == 60 and combo.int8
    assert combo.needs_calibration and parse_recipe("prune50").module_part == "prune50"
    for bad in ("w8a8+prune50", "sparse50+w8", "prune50+prune30"):
        with pytest.raises(RecipeError, match="a combination is prune<N>"):
            parse_recipe(bad)


class BlockNet(nn.Module):
    """Every coupling pruning must respect: BN and PReLU, a residual add, a concat feeding a conv, a
    depthwise conv, a conv applied twice, and a pixel_shuffle whose width is fixed."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.PReLU(16)
        self.res = nn.Conv2d(16, 16, 3, padding=1)          # added back to the stem: same channels
        self.branch_a = nn.Conv2d(16, 12, 1)
        self.branch_b = nn.Conv2d(16, 20, 3, padding=1)
        self.dw = nn.Conv2d(20, 20, 3, padding=1, groups=20)
        self.merge = nn.Conv2d(32, 24, 1)                   # consumes the concat
        self.shared = nn.Conv2d(24, 24, 3, padding=1)       # applied twice (recurrent, as in R2U-Net)
        self.to_pixels = nn.Conv2d(24, 12, 3, padding=1)    # feeds pixel_shuffle: must keep 12

    def forward(self, x):
        x = self.act(self.bn(self.stem(x)))
        x = x + F.relu(self.res(x))
        x = self.merge(torch.cat([self.branch_a(x), self.dw(self.branch_b(x))], 1))
        h = F.relu(self.shared(x))
        h = F.relu(self.shared(x + h))
        return F.pixel_shuffle(self.to_pixels(h), 2)


def _conv_macs(module, x):
    total = []
    hooks = [m.register_forward_hook(lambda mod, i, o: total.append(
        o.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]))
        for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return sum(total)


def test_structured_pruning_shrinks_the_graph_and_respects_every_coupling():
    torch.manual_seed(0)
    net = BlockNet().eval()
    x = torch.rand(1, 3, 16, 16)
    result = prune_channels(net, (x,), 50)
    pruned = result.module
    assert pruned(x).shape == net(x).shape
    assert net.stem.out_channels == 16, "the original module must not change"
    assert pruned.stem.out_channels == pruned.res.out_channels == pruned.bn.num_features == pruned.act.num_parameters
    assert pruned.stem.out_channels < 16
    assert pruned.dw.groups == pruned.dw.out_channels == pruned.branch_b.out_channels < 20
    assert pruned.merge.in_channels == pruned.branch_a.out_channels + pruned.branch_b.out_channels
    assert pruned.branch_a.out_channels < 12
    assert pruned.shared.in_channels == pruned.shared.out_channels == pruned.merge.out_channels < 24
    assert pruned.to_pixels.out_channels == 12
    measured = _conv_macs(pruned, x) / _conv_macs(net, x)
    assert 0.45 <= measured <= 0.55, measured
    assert abs(result.macs_after / result.macs_before - measured) < 0.01
    assert not result.shortfall


def test_pruning_keeps_the_channels_with_the_largest_filters():
    conv1, conv2 = nn.Conv2d(1, 4, 1, bias=False), nn.Conv2d(4, 1, 1, bias=False)
    with torch.no_grad():
        conv1.weight.copy_(torch.tensor([0.1, 5.0, 0.2, 3.0]).view(4, 1, 1, 1))
        conv2.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1))
    net = nn.Sequential(conv1, nn.ReLU(), conv2).eval()
    pruned = prune_channels(net, (torch.rand(1, 1, 4, 4),), 50).module
    assert pruned[0].weight.flatten().tolist() == [5.0, 3.0]
    assert pruned[2].weight.flatten().tolist() == [2.0, 4.0]   # the consumer keeps the matching inputs


def test_pruning_refuses_a_model_whose_every_width_is_fixed():
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).eval()
    with pytest.raises(PruneError, match="no conv channels can be pruned"):
        prune_channels(net, (torch.rand(1, 3, 8, 8),), 50)


def test_zoo_models_prune_to_about_half_the_macs():
    from edgeport.models import get_spec
    from edgeport.models.source import instantiate, resolve_inputs, source_for
    from tests.conftest import SMALL

    for name in ("realesr-general-x4v3", "interactive-segmenter"):
        config, hw = SMALL[name]
        config = {"num_conv": 6, "num_feat": 16} if name == "realesr-general-x4v3" else config
        spec = get_spec(name)
        contracts = resolve_inputs(spec, hw, config)
        module = instantiate(spec, source_for(spec, config, None, 0), contracts)
        example = tuple(torch.from_numpy(spec.make_inputs(contracts, 0)[0].arrays[c.name]) for c in contracts)
        result = prune_channels(module, example, 50)
        assert 0.45 <= result.macs_after / result.macs_before <= 0.56, (name, result.to_dict())
        assert result.module(*example).shape == module(*example).shape


def test_magnitude_sparsity_zeroes_the_smallest_weights_of_large_layers_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 64, 3), nn.Conv2d(64, 8, 3))
    sparse, details = zero_smallest_weights(net, 50)
    assert float((sparse[0].weight == 0).float().mean()) == 0.0        # 108 weights: left dense
    for layer, original in ((sparse[1], net[1]), (sparse[2], net[2])):
        assert abs(float((layer.weight == 0).float().mean()) - 0.5) < 0.01
        kept = layer.weight != 0
        assert original.weight[~kept].abs().max() <= original.weight[kept].abs().min()
    assert details["layers"] == 2 and abs(details["sparsity"] - 0.5) < 0.01


# ---- the MIL evaluator's compressed-weight ops against coremltools' own decompression ----

def _op(op_type, **consts):
    from types import SimpleNamespace

    return SimpleNamespace(op_type=op_type, name="w", inputs={k: SimpleNamespace(name=k, val=v)
                                                              for k, v in consts.items()})


def test_palette_sparse_and_affine_weights_decompress_as_coremltools_does():
    from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as defs
    from coremltools.optimize import _utils as opt_utils

    from edgeport.runtimes.mil.registry import MIL_OPS, OpArgs

    rng = np.random.default_rng(0)
    shape = np.array([6, 5, 3, 3], dtype=np.uint32)
    n = int(np.prod(shape))
    for nbits in (4, 6):
        lut = rng.normal(size=2 ** nbits).astype(np.float32)
        idx = rng.integers(0, 2 ** nbits, n).astype(np.uint8)
        packed = opt_utils.pack_elements_into_bits(idx, nbits)
        got = MIL_OPS["constexpr_lut_to_dense"](OpArgs(_op("constexpr_lut_to_dense", lut=lut, indices=packed,
                                                           shape=shape), {})).numpy()
        np.testing.assert_array_equal(got, defs.constexpr_lut_to_dense.decompress(lut, packed, shape))

    dense = rng.normal(size=n).astype(np.float32) * (rng.random(n) > 0.5)
    mask = np.packbits(dense != 0, bitorder="little")
    got = MIL_OPS["constexpr_sparse_to_dense"](OpArgs(_op("constexpr_sparse_to_dense", nonzero_data=dense[dense != 0],
                                                          mask=mask, shape=shape), {})).numpy()
    np.testing.assert_array_equal(got, dense.reshape(tuple(shape)))

    q = rng.integers(-128, 128, tuple(shape)).astype(np.int8)
    scale = rng.random(6).astype(np.float32)
    zero = rng.integers(-3, 3, 6).astype(np.int8)
    got = MIL_OPS["constexpr_affine_dequantize"](OpArgs(_op("constexpr_affine_dequantize", quantized_data=q,
                                                            zero_point=zero, scale=scale, axis=np.int32(0)), {}))
    np.testing.assert_allclose(got.numpy(), defs.constexpr_affine_dequantize.decompress(q, zero, scale, 0), rtol=1e-6)
