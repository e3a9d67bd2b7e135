"""The Linux Core ML engine checked against PyTorch, op by op, on programs the real converter emits."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeport.models.corpus.ops import CONVERTER_REFUSES, OP_CASES, build_case, op_input
from edgeport.parity_tests.metrics import compare
from edgeport.parity_tests.mil_coverage import (PRECISIONS, CaseBundle, CoverageReport, OpCaseResult,
                                                attributes_markdown, convert, coverage_markdown, evaluate, judge_case,
                                                program_attributes, program_ops, reference, run_case)
from edgeport.runtimes.mil.registry import MIL_OPS, MilEvalError
from edgeport.runtimes.mil.resize import bilinear_grid


def _convert(module, x, precision, tmp_path):
    """Through edgeport's Core ML exporter, as every artifact is converted (input x, output y0)."""
    from edgeport.runtimes.mil.program import MilEvaluator

    return MilEvaluator(convert(module.eval(), x, precision, tmp_path))


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
    m = compare(module(x).numpy(), evaluator.run({"x": x.numpy()})["y0"])
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
    m = compare(module(x).detach().numpy(), evaluator.run({"x": x.numpy()})["y0"])
    assert m.psnr_db >= min_db and m.max_abs <= max_abs, m


def test_fp16_program_really_rounds(tmp_path):
    """fp16 must differ from fp32 a little: an evaluator that ignored the casts would be bit-exact."""
    torch.manual_seed(0)
    module, x = ConvStack(), torch.rand(1, 3, 32, 32)
    m = compare(module(x).detach().numpy(), _convert(module, x, "fp16", tmp_path).run({"x": x.numpy()})["y0"])
    assert 0 < m.max_abs < 1e-2


def test_unknown_op_is_named_with_the_file_it_belongs_in_not_skipped(tmp_path):
    """l2_pool: a MIL op no PyTorch module converts to (so no corpus case covers it), built with MIL's builder."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 4, 4))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")

    path = tmp_path / "l2.mlpackage"
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    with pytest.raises(MilEvalError, match="MIL op 'l2_pool'.*not implemented.*add it to runtimes/mil/ops.py"):
        MilEvaluator(load_mil_program(path))


def test_random_ops_are_refused_with_the_reason(tmp_path):
    class Noisy(nn.Module):   # torch.randn_like at inference -> MIL random_normal
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x)

    with pytest.raises(MilEvalError, match="'random_normal'.*draws random numbers.*export without the noise"):
        _convert(Noisy(), torch.rand(1, 3, 8, 8), "fp32", tmp_path)


@pytest.mark.parametrize("size_out,mode,expected", [
    # the worked examples in coremltools' upsample_bilinear / resize_bilinear docs, input size 2
    (5, "UNALIGN_CORNERS", [0.0, 0.1, 0.5, 0.9, 1.0]),
    (5, "STRICT_ALIGN_CORNERS", [0.0, 0.25, 0.5, 0.75, 1.0]),
    (6, "UNALIGN_CORNERS", [0.0, 0.0, 0.33, 0.67, 1.0, 1.0]),
    (6, "STRICT_ALIGN_CORNERS", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_bilinear_grid_matches_documented_examples(size_out, mode, expected):
    assert bilinear_grid(2, size_out, mode).numpy() == pytest.approx(expected, abs=0.005)


CONVERTIBLE = [c for c in OP_CASES if c.name not in CONVERTER_REFUSES]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_op_the_converter_emits_for_the_op_corpus_runs_as_pytorch_computes_it(precision, tmp_path):
    """The whole op corpus as one program (one output per case): every MIL op in it is implemented, and every
    case meets its bar against PyTorch (fp32 >= 80 dB, fp16 >= 40 dB, indices exact)."""
    x, modules = op_input(), [build_case(c) for c in CONVERTIBLE]
    program = convert(CaseBundle(modules), x, precision, tmp_path)
    references = [reference(c, m, x, precision) for c, m in zip(CONVERTIBLE, modules)]
    uncovered = sorted(set(program_ops(program)) - set(MIL_OPS))
    assert not uncovered, f"the op corpus emits MIL ops the evaluator lacks: {uncovered} (runtimes/mil/)"
    metrics = evaluate(program, x.numpy(), references)
    failures = [f"{c.name}: {why}" for c, (db, worst) in zip(CONVERTIBLE, metrics)
                if (why := judge_case(OpCaseResult(c.name, c.group, precision, psnr_db=db, max_abs=worst)))]
    assert not failures, failures
    variants, _ = program_attributes(program)     # attributes, not only op names: each of these broke once
    for needed in ("concat.interleave=True", "concat.interleave=False", "pad.mode=reflect", "pad.mode=constant",
                   "reduce_mean.keep_dims=True", "reduce_mean.keep_dims=False"):
        assert needed in variants, f"the corpus no longer makes the converter emit {needed}"


def test_converter_still_refuses_what_the_corpus_says_it_refuses(tmp_path):
    """CONVERTER_REFUSES is measured, not assumed: a coremltools that starts converting one fails this."""
    refused = {c.name: run_case(c, "fp32", tmp_path) for c in OP_CASES if c.name in CONVERTER_REFUSES}
    assert set(refused) == set(CONVERTER_REFUSES)
    converted = [name for name, r in refused.items() if r.converted]
    assert not converted, f"coremltools now converts {converted}: move them out of CONVERTER_REFUSES"


def test_a_case_with_a_missing_op_is_judged_a_failure_naming_the_op():
    lacking = OpCaseResult("x", "g", "fp32", mil_ops=("conv", "mystery"), missing=("mystery",))
    assert judge_case(lacking) == "evaluator lacks mystery"
    assert judge_case(OpCaseResult("x", "g", "fp32", psnr_db=79.0, max_abs=1e-4)).startswith("79.0 dB < 80")
    assert judge_case(OpCaseResult("argmax", "g", "fp32", psnr_db=50.0, max_abs=1.0)).startswith("indices differ")
    assert judge_case(OpCaseResult("x", "g", "fp16", psnr_db=41.0, max_abs=1e-3)) is None
    assert judge_case(OpCaseResult("x", "g", "fp16", converter_error="refused")) is None
    assert judge_case(OpCaseResult("clamp_tensor_crossed", "g", "fp32", psnr_db=20.0, max_abs=1.0)) is None
    assert "remove it" in judge_case(OpCaseResult("clamp_tensor_crossed", "g", "fp32", psnr_db=150.0, max_abs=0.0))
    report = CoverageReport({"coremltools": "9.0"}, (lacking,), ("conv",))
    assert report.uncovered() == ["mystery"] and report.coverage_percent() == 50.0
    assert "| `mystery` | x (at fp32 only) | **missing** |" in coverage_markdown(report)
    assert CoverageReport.from_dict(report.to_dict()) == report


def test_attribute_table_names_variants_of_failing_cases_and_inputs_never_given():
    ok = OpCaseResult("cat", "g", "fp32", mil_ops=("concat",), psnr_db=math.inf, max_abs=0.0,
                      attributes=("concat.interleave=False", "concat.values=list of fp32"),
                      declared=("concat.axis", "concat.interleave", "concat.values"))
    bad = OpCaseResult("shuffle", "g", "fp32", mil_ops=("concat",), psnr_db=10.0, max_abs=1.0,
                       attributes=("concat.interleave=True", "concat.values=list of fp32"),
                       declared=("concat.axis", "concat.interleave", "concat.values"))
    report = CoverageReport({"coremltools": "9.0"}, (ok, bad), ("concat",))
    table = attributes_markdown(report)
    assert table.startswith("Attributes: 2 of 3 input variants") and "1 inputs the emitted ops declare" in table
    assert "| `concat` | interleave=False, interleave=True, values=list of fp32 | interleave=True | axis |" in table
    assert CoverageReport.from_dict(report.to_dict()) == report


def _builder_program(tmp_path, name, shape, body):
    """A MIL program built with coremltools' own builder, saved and read back: for ops the torch frontend
    does not emit at this target (so no corpus case reaches them)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS16)
    def program(x):
        return body(mb, x)

    path = tmp_path / f"{name}.mlpackage"
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32).save(str(path))
    evaluator = MilEvaluator(load_mil_program(path))
    return evaluator, next(iter(evaluator.function.inputs))


BUILDER_OPS = {
    "reduce_prod": (lambda mb, x: mb.reduce_prod(x=x, axes=[1]), lambda x: x.prod(1)),
    "reduce_l1_norm": (lambda mb, x: mb.reduce_l1_norm(x=x, axes=[2, 3], keep_dims=True),
                       lambda x: x.abs().sum((2, 3), keepdim=True)),
    "reduce_sum_square": (lambda mb, x: mb.reduce_sum_square(x=x, axes=[1]), lambda x: (x * x).sum(1)),
    "clamped_relu": (lambda mb, x: mb.clamped_relu(x=x, alpha=0.1, beta=0.5),
                     lambda x: torch.clamp(torch.where(x >= 0, x, 0.1 * x), max=0.5)),
    "scaled_tanh": (lambda mb, x: mb.scaled_tanh(x=x, alpha=2.0, beta=0.5), lambda x: 2.0 * torch.tanh(0.5 * x)),
    "slice_by_size": (lambda mb, x: mb.slice_by_size(x=x, begin=[0, 1, 2, 0], size=[1, 2, -1, 3]),
                      lambda x: x[:, 1:3, 2:, 0:3]),
    "depth_to_space": (lambda mb, x: mb.depth_to_space(x=x, block_size=2), None),
    "topk_ascending": (lambda mb, x: mb.topk(x=x, k=2, axis=1, ascending=True)[0],
                       lambda x: torch.topk(x, 2, dim=1, largest=False).values),
    "cumsum_exclusive_reverse": (lambda mb, x: mb.cumsum(x=x, axis=3, exclusive=True, reverse=True),
                                 lambda x: x.flip(3).cumsum(3).flip(3) - x),
    # the inputs the corpus never makes the converter give (the attribute table's last column)
    "slice_begin_mask": (lambda mb, x: mb.slice_by_index(x=x, begin=[0, 3, 1, 2], end=[1, 4, 3, 5],
                                                         begin_mask=[False, True, False, True]),
                         lambda x: x[0:1, 0:4, 1:3, 0:5]),
    "upsample_bilinear_asymmetric": (   # TensorFlow 1's resize: source index i * in / out, no offset
        lambda mb, x: mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=2.0,
                                           align_corners=False, half_pixel_centers=False),
        lambda x: _asymmetric_upsample2(x)),
}


def _asymmetric_upsample2(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear with source position i / 2 (edge clamped), written out from that definition."""
    def axis(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        src = torch.arange(2 * n, dtype=torch.float64) / 2
        lo = src.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        frac = (src - lo).float().reshape([-1 if d == dim else 1 for d in range(t.dim())])
        return t.index_select(dim, lo) * (1 - frac) + t.index_select(dim, hi) * frac
    return axis(axis(x, 2), 3)


@pytest.mark.parametrize("name", sorted(BUILDER_OPS))
def test_ops_no_torch_module_emits_match_their_definition(name, tmp_path):
    build, expected = BUILDER_OPS[name]
    x = torch.randn(1, 4, 4, 6, generator=torch.Generator().manual_seed(0))
    evaluator, input_name = _builder_program(tmp_path, name, (1, 4, 4, 6), build)
    got = torch.from_numpy(next(iter(evaluator.run({input_name: x.numpy()}).values())))
    if expected is None:   # depth_to_space is TensorFlow's DCR order: pixel_shuffle of channels regrouped
        expected = lambda x: F.pixel_shuffle(x.reshape(1, 2, 2, 1, 4, 6).permute(0, 3, 1, 2, 4, 5).reshape(1, 4, 4, 6), 2)  # noqa: E731
    assert torch.allclose(got, expected(x), atol=1e-5), (name, got.shape)
