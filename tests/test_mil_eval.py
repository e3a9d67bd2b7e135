"""The Linux Core ML engine checked against PyTorch, op by op, on programs the real converter emits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from parity_tests.metrics import compare
from runtimes.mil.ops import MilEvalError
from runtimes.mil.resize import bilinear_grid


def _convert(module, x, precision, tmp_path):
    import coremltools as ct

    from runtimes.mil.program import MilEvaluator, load_mil_program

    ep = torch.export.export(module.eval(), (x,)).run_decompositions({})
    ml = ct.convert(ep, convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
                    outputs=[ct.TensorType(name="y", dtype=np.float32)],
                    compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                    minimum_deployment_target=ct.target.iOS16)
    path = tmp_path / f"m-{precision}.mlpackage"
    ml.save(str(path))
    return MilEvaluator(load_mil_program(path))


class Resize(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return F.interpolate(x, **self.kw)


RESIZES = [
    dict(size=(45, 50), mode="bilinear", align_corners=False),
    dict(size=(45, 50), mode="bilinear", align_corners=True),
    dict(size=(17, 13), mode="bilinear", align_corners=False),
    dict(size=(17, 13), mode="bilinear", align_corners=True),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(scale_factor=0.5, mode="bilinear", align_corners=False),
    dict(size=(45, 50), mode="nearest"),
    dict(size=(20, 24), mode="nearest"),
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=4, mode="nearest"),
]


@pytest.mark.parametrize("kw", RESIZES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_resize_matches_torch_in_fp32(kw, tmp_path):
    x = torch.rand(1, 3, 32, 32)
    module = Resize(**kw)
    evaluator = _convert(module, x, "fp32", tmp_path)
    assert evaluator.op_types & {"upsample_bilinear", "upsample_nearest_neighbor", "resize_bilinear",
                                 "resize_nearest_neighbor"}
    m = compare(module(x).numpy(), evaluator.run({"x": x.numpy()})["y"])
    assert m.max_abs < 1e-5, m


class ConvStack(nn.Module):
    """The conv variants and activations the zoo uses, in one program."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.prelu = nn.PReLU(8)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.point = nn.Conv2d(8, 16, 1)
        with torch.no_grad():
            self.prelu.weight.uniform_(0.0, 0.5)

    def forward(self, x):
        y = self.point(F.leaky_relu(self.dilated(self.prelu(self.down(x))), 0.2))
        y = torch.cat([F.pixel_shuffle(y, 2), x.clamp(0.2, 0.8)], 1) * 0.2 + 0.1
        return F.pixel_unshuffle(torch.sigmoid(y), 2)


FP16_ULP_AT_1 = 2.0 ** -10


@pytest.mark.parametrize("precision,min_db,max_abs", [("fp32", 120.0, 1e-6), ("fp16", 45.0, 2 * FP16_ULP_AT_1)])
def test_conv_stack_matches_torch(precision, min_db, max_abs, tmp_path):
    torch.manual_seed(0)
    module, x = ConvStack(), torch.rand(1, 3, 32, 32)
    evaluator = _convert(module, x, precision, tmp_path)
    assert {"conv", "prelu", "leaky_relu", "pixel_shuffle", "pixel_unshuffle", "concat"} <= evaluator.op_types
    if precision == "fp16":
        assert "cast" in evaluator.op_types
    m = compare(module(x).detach().numpy(), evaluator.run({"x": x.numpy()})["y"])
    assert m.psnr_db >= min_db and m.max_abs <= max_abs, m


def test_fp16_program_really_rounds(tmp_path):
    """fp16 must differ from fp32 a little: an evaluator that ignored the casts would be bit-exact."""
    torch.manual_seed(0)
    module, x = ConvStack(), torch.rand(1, 3, 32, 32)
    m = compare(module(x).detach().numpy(), _convert(module, x, "fp16", tmp_path).run({"x": x.numpy()})["y"])
    assert 0 < m.max_abs < 1e-2


def test_unknown_op_is_named_not_skipped(tmp_path):
    class Flip(nn.Module):   # MIL `reverse`: not in the evaluator yet
        def forward(self, x):
            return torch.flip(x, dims=[3])

    with pytest.raises(MilEvalError, match="MIL op 'reverse'.*not implemented.*runtimes/mil/ops.py"):
        _convert(Flip(), torch.rand(1, 3, 8, 8), "fp32", tmp_path)


@pytest.mark.parametrize("size_out,mode,expected", [
    # the worked examples in coremltools' upsample_bilinear / resize_bilinear docs, input size 2
    (5, "UNALIGN_CORNERS", [0.0, 0.1, 0.5, 0.9, 1.0]),
    (5, "STRICT_ALIGN_CORNERS", [0.0, 0.25, 0.5, 0.75, 1.0]),
    (6, "UNALIGN_CORNERS", [0.0, 0.0, 0.33, 0.67, 1.0, 1.0]),
    (6, "STRICT_ALIGN_CORNERS", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_bilinear_grid_matches_documented_examples(size_out, mode, expected):
    assert bilinear_grid(2, size_out, mode).numpy() == pytest.approx(expected, abs=0.005)


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# What the converter emits for common activations, comparisons, logic and normalisations (runtimes/mil/activations.py)
OPS_BY_MODULE = {
    "gelu": _Fn(F.gelu), "gelu_tanh": _Fn(lambda x: F.gelu(x, approximate="tanh")), "relu6": _Fn(F.relu6),
    "silu": _Fn(F.silu), "softplus": _Fn(F.softplus), "hardswish": _Fn(F.hardswish), "hardsigmoid": _Fn(F.hardsigmoid),
    "mish": _Fn(F.mish), "softsign": _Fn(F.softsign), "erf": _Fn(torch.erf), "sign": _Fn(torch.sign),
    "select_greater": _Fn(lambda x: torch.where(x > 0.1, x, -x)),
    "logic": _Fn(lambda x: torch.where(torch.logical_or(torch.logical_and(x > 0, torch.logical_not(x > 0.5)),
                                                        torch.logical_xor(x < -0.5, x < -1.5)), x * 2, x)),
    "layer_norm": nn.LayerNorm([6, 9]), "group_norm": nn.GroupNorm(2, 4), "instance_norm": nn.InstanceNorm2d(4, affine=True),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(OPS_BY_MODULE))
def test_activation_and_norm_ops_match_pytorch_on_converter_output(name, precision, tmp_path):
    torch.manual_seed(0)
    module = OPS_BY_MODULE[name].eval()
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)):
        for p in module.parameters():
            nn.init.uniform_(p, 0.5, 1.5)
    x = torch.randn(1, 4, 6, 9) * 2
    program = _convert(module, x, precision, tmp_path)
    with torch.no_grad():
        want = module(x).numpy()
    got = program.run({"x": x.numpy()})["y"]
    assert compare(want, got).psnr_db > (60 if precision == "fp32" else 40), (name, program.op_types)
