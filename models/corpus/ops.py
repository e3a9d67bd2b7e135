"""The op-per-module corpus: every torch op and nn layer a vision network commonly uses, one small case each.

Each case maps one input x (OP_INPUT_SHAPE, normal values) to one float tensor, so any number of cases can be
converted as one multi-output program (parity_tests/mil_coverage.py) or one at a time. Cases needing positive
values, indices or another shape build them from x inside, which the converter sees too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

OP_INPUT_SHAPE = (1, 8, 12, 12)


@dataclass(frozen=True)
class OpCase:
    name: str
    group: str
    build: Callable[[], nn.Module]


class Fn(nn.Module):
    """A stateless case: fn(x)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Layer(nn.Module):
    """A case with weights: post(layer(pre(x)))."""

    def __init__(self, layer: nn.Module, pre: Callable = lambda x: x, post: Callable = lambda y: y) -> None:
        super().__init__()
        self.layer, self.pre, self.post = layer, pre, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.layer(self.pre(x)))


def _pos(x: torch.Tensor) -> torch.Tensor:
    return x.abs() + 0.5


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(1, 8, 12, 12) -> (1, 144, 8): a sequence of 144 tokens of width 8, as a ViT sees a feature map."""
    return x.flatten(2).transpose(1, 2)


def _heads(x: torch.Tensor) -> torch.Tensor:
    """(1, 2 heads, 144 tokens, 4)."""
    return _tokens(x).reshape(1, 144, 2, 4).transpose(1, 2)


def _cases(group: str, table: dict[str, Callable[[], nn.Module]]) -> list[OpCase]:
    return [OpCase(name, group, build) for name, build in table.items()]


ACTIVATIONS = {
    "relu": lambda: Fn(F.relu), "relu6": lambda: Fn(F.relu6), "leaky_relu": lambda: Fn(lambda x: F.leaky_relu(x, 0.2)),
    "elu": lambda: Fn(F.elu), "selu": lambda: Fn(F.selu), "celu": lambda: Fn(lambda x: F.celu(x, 0.5)),
    "gelu": lambda: Fn(F.gelu), "gelu_tanh": lambda: Fn(lambda x: F.gelu(x, approximate="tanh")),
    "silu": lambda: Fn(F.silu), "hardswish": lambda: Fn(F.hardswish), "hardsigmoid": lambda: Fn(F.hardsigmoid),
    "hardtanh": lambda: Fn(lambda x: F.hardtanh(x, -0.5, 0.5)), "mish": lambda: Fn(F.mish),
    # Python int bounds (MobileNetV3 as third-party libraries write it): reach the converter as int32 bounds
    "hardtanh_int_bounds": lambda: Fn(lambda x: F.hardtanh(x, 0, 1)),
    "clamp_int_bounds": lambda: Fn(lambda x: x.clamp(-1, 1)),
    "softplus": lambda: Fn(F.softplus), "softplus_beta": lambda: Fn(lambda x: F.softplus(x, beta=2.0)),
    "softsign": lambda: Fn(F.softsign), "sigmoid": lambda: Fn(torch.sigmoid), "tanh": lambda: Fn(torch.tanh),
    "logsigmoid": lambda: Fn(F.logsigmoid), "prelu": lambda: Layer(nn.PReLU(8, 0.1)),
    "prelu_shared": lambda: Layer(nn.PReLU(1, 0.2)), "glu": lambda: Fn(lambda x: F.glu(x, dim=1)),
    "threshold": lambda: Fn(lambda x: F.threshold(x, 0.3, 0.0)),
}
NORMS = {
    "batch_norm": lambda: Layer(nn.BatchNorm2d(8)), "instance_norm": lambda: Layer(nn.InstanceNorm2d(8, affine=True)),
    "instance_norm_plain": lambda: Layer(nn.InstanceNorm2d(8)), "group_norm": lambda: Layer(nn.GroupNorm(2, 8)),
    "layer_norm_last": lambda: Layer(nn.LayerNorm(8), _tokens),
    "layer_norm_channels": lambda: Layer(nn.LayerNorm(8), lambda x: x.permute(0, 2, 3, 1)),
    "layer_norm_chw": lambda: Layer(nn.LayerNorm([8, 12, 12])),
    "l2_normalize": lambda: Fn(lambda x: F.normalize(x, dim=1)),
    "local_response_norm": lambda: Layer(nn.LocalResponseNorm(3)),
}
ELEMENTWISE = {
    "add": lambda: Fn(lambda x: x + x[:, :1]), "sub": lambda: Fn(lambda x: x - 0.3),
    "rsub": lambda: Fn(lambda x: 1.0 - x), "mul": lambda: Fn(lambda x: x * x[:, 1:2]),
    "div": lambda: Fn(lambda x: x / _pos(x[:, :1])), "pow_scalar": lambda: Fn(lambda x: _pos(x) ** 1.5),
    "pow_square": lambda: Fn(lambda x: x ** 2), "pow_tensor": lambda: Fn(lambda x: _pos(x) ** (x[:, :1] * 0.5)),
    "maximum": lambda: Fn(lambda x: torch.maximum(x, x[:, :1])), "minimum": lambda: Fn(lambda x: torch.minimum(x, 0.2 * x)),
    "floor_divide": lambda: Fn(lambda x: torch.div(x * 4, 1.5, rounding_mode="floor")),
    "remainder": lambda: Fn(lambda x: torch.remainder(x * 4, 1.5)), "remainder_one": lambda: Fn(lambda x: (x * 4) % 1.0), "fmod": lambda: Fn(lambda x: torch.fmod(x * 4, 1.5)),
    "neg": lambda: Fn(lambda x: -x), "abs": lambda: Fn(torch.abs), "exp": lambda: Fn(torch.exp),
    "log": lambda: Fn(lambda x: torch.log(_pos(x))), "log2": lambda: Fn(lambda x: torch.log2(_pos(x))),
    "sqrt": lambda: Fn(lambda x: torch.sqrt(_pos(x))), "rsqrt": lambda: Fn(lambda x: torch.rsqrt(_pos(x))),
    "reciprocal": lambda: Fn(lambda x: torch.reciprocal(_pos(x))), "square": lambda: Fn(torch.square),
    "sin": lambda: Fn(torch.sin), "cos": lambda: Fn(torch.cos), "atan": lambda: Fn(torch.atan),
    "floor": lambda: Fn(lambda x: torch.floor(x * 3)), "ceil": lambda: Fn(lambda x: torch.ceil(x * 3)),
    "round": lambda: Fn(lambda x: torch.round(x * 3)), "trunc": lambda: Fn(lambda x: torch.trunc(x * 3)),
    "sign": lambda: Fn(torch.sign), "erf": lambda: Fn(torch.erf),
    "clamp": lambda: Fn(lambda x: x.clamp(-0.5, 0.7)), "clamp_min": lambda: Fn(lambda x: x.clamp(min=0.1)),
    "clamp_tensor": lambda: Fn(lambda x: torch.clamp(x, min=-x[:, :1].abs() - 0.2, max=x[:, 1:2].abs() + 0.2)),
    "clamp_tensor_crossed": lambda: Fn(lambda x: torch.clamp(x, min=x[:, :1] - 0.5, max=x[:, 1:2] + 0.5)),
    "lerp": lambda: Fn(lambda x: torch.lerp(x, x.flip(1), 0.25)),
}
COMPARE_LOGIC = {
    "eq": lambda: Fn(lambda x: torch.where(torch.round(x) == 0, x, -x)),
    "ne": lambda: Fn(lambda x: (torch.round(x) != 0).float()), "gt": lambda: Fn(lambda x: (x > 0.2).float()),
    "ge": lambda: Fn(lambda x: (x >= x[:, :1]).float()), "lt": lambda: Fn(lambda x: (x < -0.1).float()),
    "le": lambda: Fn(lambda x: (x <= 0.5).float() * x),
    "logical_and": lambda: Fn(lambda x: torch.logical_and(x > 0, x < 1).float()),
    "logical_or": lambda: Fn(lambda x: torch.logical_or(x > 1, x < -1).float()),
    "logical_xor": lambda: Fn(lambda x: torch.logical_xor(x > 0, x[:, :1] > 0).float()),
    "logical_not": lambda: Fn(lambda x: torch.logical_not(x > 0).float()),
    "where": lambda: Fn(lambda x: torch.where(x > 0, x, 0.1 * x)),
    "masked_fill": lambda: Fn(lambda x: x.masked_fill(x < -0.5, -1.0)),
}
REDUCTIONS = {
    "mean": lambda: Fn(lambda x: x.mean(dim=(2, 3), keepdim=True)), "sum": lambda: Fn(lambda x: x.sum(dim=1)),
    "amax": lambda: Fn(lambda x: x.amax(dim=1, keepdim=True)), "amin": lambda: Fn(lambda x: x.amin(dim=(2, 3))),
    "max_dim": lambda: Fn(lambda x: x.max(dim=1)[0]), "prod": lambda: Fn(lambda x: (1 + 0.1 * x).prod(dim=1)),
    "argmax": lambda: Fn(lambda x: x.argmax(dim=1).float()), "argmin": lambda: Fn(lambda x: x.argmin(dim=3).float()),
    "max_indices": lambda: Fn(lambda x: x.max(dim=2)[1].float()),
    "l2_norm": lambda: Fn(lambda x: torch.linalg.vector_norm(x, dim=1)),
    "l1_norm": lambda: Fn(lambda x: torch.linalg.vector_norm(x, ord=1, dim=(2, 3))),
    "logsumexp": lambda: Fn(lambda x: torch.logsumexp(x, dim=1)), "var": lambda: Fn(lambda x: x.var(dim=(2, 3))),
    "std": lambda: Fn(lambda x: x.std(dim=1, keepdim=True)), "global_max": lambda: Fn(lambda x: x.amax()),
    "softmax": lambda: Fn(lambda x: torch.softmax(x, dim=1)), "softmax_last": lambda: Fn(lambda x: torch.softmax(x, -1)),
    "log_softmax": lambda: Fn(lambda x: torch.log_softmax(x, dim=1)),
}


class Attention(nn.Module):
    """torch.nn.MultiheadAttention over the 144 tokens, as a ViT block calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = _tokens(x)
        return self.attn(t, t, t, need_weights=False)[0]


def _window_attention(x: torch.Tensor) -> torch.Tensor:
    """Swin's pattern: roll, 6x6 windows, attention inside each, reverse."""
    w = torch.roll(x, shifts=(-3, -3), dims=(2, 3)).reshape(1, 8, 2, 6, 2, 6).permute(0, 2, 4, 3, 5, 1)
    w = w.reshape(4, 36, 8)
    return F.scaled_dot_product_attention(w, w, w).reshape(1, 2, 2, 6, 6, 8)


def _window_attention_rank5(x: torch.Tensor) -> torch.Tensor:
    """The same windows through rank-5 reshapes (batch folded into the window rows): what Core ML accepts."""
    w = torch.roll(x, shifts=(-3, -3), dims=(2, 3)).reshape(8, 2, 6, 2, 6).permute(1, 3, 2, 4, 0).reshape(4, 36, 8)
    return F.scaled_dot_product_attention(w, w, w).reshape(2, 2, 6, 6, 8)


MATMUL = {
    "matmul": lambda: Fn(lambda x: torch.matmul(x, x.transpose(2, 3))), "bmm": lambda: Fn(lambda x: torch.bmm(x[0], x[0])),
    "linear": lambda: Layer(nn.Linear(8, 16), _tokens), "linear_nobias": lambda: Layer(nn.Linear(12, 5, bias=False)),
    "einsum_proj": lambda: Fn(lambda x: torch.einsum("bchw,bdc->bdhw", x, x.mean((2, 3)).unsqueeze(1) * _tokens(x)[:, :4, :])),
    "einsum_attn": lambda: Fn(lambda x: torch.einsum("bhqd,bhkd->bhqk", _heads(x), _heads(x))),
    "sdpa": lambda: Fn(lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x) * 0.5, _heads(x))),
    "sdpa_causal": lambda: Fn(lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x), _heads(x), is_causal=True)),
    "attention_manual": lambda: Fn(lambda x: torch.softmax(_heads(x) @ _heads(x).transpose(-2, -1) * 0.5, -1) @ _heads(x)),
    "multihead_attention": Attention, "window_attention_rank6": lambda: Fn(_window_attention),
    "window_attention_rank5": lambda: Fn(_window_attention_rank5),
}
CONVS = {
    "conv": lambda: Layer(nn.Conv2d(8, 6, 3, padding=1)), "conv_strided": lambda: Layer(nn.Conv2d(8, 6, 3, 2, 1)),
    "conv_valid": lambda: Layer(nn.Conv2d(8, 4, 5)), "conv_1x1_nobias": lambda: Layer(nn.Conv2d(8, 16, 1, bias=False)),
    "conv_grouped": lambda: Layer(nn.Conv2d(8, 8, 3, padding=1, groups=4)),
    "conv_depthwise": lambda: Layer(nn.Conv2d(8, 8, 7, padding=3, groups=8)),
    "conv_dilated": lambda: Layer(nn.Conv2d(8, 8, 3, padding=4, dilation=4)),
    "conv_asymmetric": lambda: Layer(nn.Conv2d(8, 4, (1, 5), padding=(0, 2))),
    "conv_same": lambda: Layer(nn.Conv2d(8, 4, 4, padding="same")),
    "conv_reflect": lambda: Layer(nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect")),
    "conv1d": lambda: Layer(nn.Conv1d(8, 4, 3, padding=1), lambda x: x.flatten(2)),
    "conv_transpose": lambda: Layer(nn.ConvTranspose2d(8, 4, 4, 2, 1)),
    "conv_transpose_outpad": lambda: Layer(nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1)),
    "conv_transpose_grouped": lambda: Layer(nn.ConvTranspose2d(8, 8, 2, 2, groups=4)),
}
POOLS = {
    "max_pool": lambda: Layer(nn.MaxPool2d(2)), "max_pool_default_stride": lambda: Fn(lambda x: F.max_pool2d(x, 2)), "max_pool_pad": lambda: Fn(lambda x: F.max_pool2d(x, 3, 2, 1)),
    "max_pool_ceil": lambda: Fn(lambda x: F.max_pool2d(x[..., :11, :11], 2, ceil_mode=True)),
    "avg_pool": lambda: Fn(lambda x: F.avg_pool2d(x, 2)),
    "avg_pool_pad": lambda: Fn(lambda x: F.avg_pool2d(x, 3, 1, 1)),
    "avg_pool_exclude_pad": lambda: Fn(lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    "avg_pool_ceil": lambda: Fn(lambda x: F.avg_pool2d(x[..., :11, :11], 2, ceil_mode=True)),
    "adaptive_avg_pool_1": lambda: Fn(lambda x: F.adaptive_avg_pool2d(x, 1)),
    "adaptive_avg_pool_3": lambda: Fn(lambda x: F.adaptive_avg_pool2d(x, 3)),
    "adaptive_avg_pool_uneven": lambda: Fn(lambda x: F.adaptive_avg_pool2d(x, (5, 7))),
    "adaptive_max_pool_1": lambda: Fn(lambda x: F.adaptive_max_pool2d(x, 1)),
    "adaptive_max_pool_2": lambda: Fn(lambda x: F.adaptive_max_pool2d(x, 2)),
    "max_pool_dilated": lambda: Fn(lambda x: F.max_pool2d(x, 2, 1, dilation=2)),
}
PADS = {
    "pad_constant": lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 3), value=0.5)),
    "pad_reflect": lambda: Fn(lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect")),
    "pad_replicate": lambda: Fn(lambda x: F.pad(x, (2, 1, 1, 2), mode="replicate")),
    "pad_circular": lambda: Fn(lambda x: F.pad(x, (2, 1, 1, 2), mode="circular")),
    "zero_pad_module": lambda: Layer(nn.ZeroPad2d((1, 0, 1, 0))),
    "pad_channels": lambda: Fn(lambda x: F.pad(x, (0, 0, 0, 0, 2, 2))),
}


class Gather(nn.Module):
    """Index tensors held as buffers, as a positional table or a channel shuffle holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("order", torch.tensor([3, 0, 7, 1, 1, 5]))
        self.register_buffer("rows", torch.arange(12).flip(0).reshape(1, 1, 12, 1).expand(1, 8, 12, 12).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.order) + torch.gather(x, 2, self.rows)[:, :6]


def _mask_assign(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[y > 1.0] = 1.0
    return y


def _slice_assign(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 1:3, 4:8] = 0.5
    return y


SHAPES = {
    "gather_index_select": Gather,
    "gather_advanced_index": lambda: Fn(lambda x: x[:, [2, 0, 5]]),
    "gather_along_axis": lambda: Fn(lambda x: torch.gather(x, 1, x.argmax(dim=1, keepdim=True))),
    "gather_by_argmax": lambda: Fn(lambda x: torch.take_along_dim(x, x.argmin(dim=3, keepdim=True), dim=3)),
    "scatter": lambda: Fn(lambda x: torch.zeros_like(x).scatter(1, x.argmax(dim=1, keepdim=True), 1.0)),
    "slice_assign": lambda: Fn(_slice_assign), "mask_assign": lambda: Fn(_mask_assign),
    "slice": lambda: Fn(lambda x: x[:, 2:6, 1:-1, ::2]), "slice_step_channels": lambda: Fn(lambda x: x[:, ::3]),
    "select_index": lambda: Fn(lambda x: x[:, 3] + x[0, :, 5].sum()), "narrow": lambda: Fn(lambda x: x.narrow(3, 4, 5)),
    "split": lambda: Fn(lambda x: torch.stack(torch.split(x, [3, 5], dim=1)[1].unbind(1), 0)),
    "chunk": lambda: Fn(lambda x: x.chunk(2, dim=1)[0] * x.chunk(2, dim=1)[1]),
    "concat": lambda: Fn(lambda x: torch.cat([x, x[:, :3] * 2], dim=1)),
    "stack": lambda: Fn(lambda x: torch.stack([x, x * 0.5], dim=2)),
    "squeeze": lambda: Fn(lambda x: x.mean(1, keepdim=True).squeeze(1)), "unsqueeze": lambda: Fn(lambda x: x.unsqueeze(2)),
    "reshape": lambda: Fn(lambda x: x.reshape(1, 4, 2, 144)), "view_flatten": lambda: Fn(lambda x: x.view(1, -1)),
    "flatten": lambda: Fn(lambda x: torch.flatten(x, 1)), "permute": lambda: Fn(lambda x: x.permute(0, 2, 3, 1)),
    "transpose": lambda: Fn(lambda x: x.transpose(1, 3)), "repeat": lambda: Fn(lambda x: x.repeat(1, 2, 1, 1)),
    "repeat_interleave": lambda: Fn(lambda x: x.repeat_interleave(2, dim=1)),
    "expand": lambda: Fn(lambda x: x.mean(1, keepdim=True).expand(1, 8, 12, 12) - x),
    "broadcast_to_batch": lambda: Fn(lambda x: x.expand(2, 8, 12, 12)),
    "roll": lambda: Fn(lambda x: torch.roll(x, shifts=(3, -2), dims=(2, 3))), "flip": lambda: Fn(lambda x: x.flip(3)),
    "channel_shuffle": lambda: Fn(lambda x: x.reshape(1, 2, 4, 12, 12).transpose(1, 2).reshape(1, 8, 12, 12)),
    # ShuffleNetV2's unit: a concat then the shuffle, which coremltools fuses into concat(interleave=True)
    "concat_shuffle": lambda: Fn(lambda x: torch.cat([x[:, :4], x[:, 4:] * 2], 1).reshape(1, 2, 4, 12, 12)
                                 .transpose(1, 2).reshape(1, 8, 12, 12)),
    "unfold_patches": lambda: Fn(lambda x: x.unfold(2, 4, 4).unfold(3, 4, 4).reshape(1, 8, 9, 16)),
}
class GridSample(nn.Module):
    """F.grid_sample at fixed coordinates reaching past the border (flow warps and deformable sampling)."""

    def __init__(self, **kw: object) -> None:
        super().__init__()
        self.kw = kw
        self.register_buffer("grid", torch.rand(1, 10, 9, 2, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, self.grid, **self.kw)


RESIZES = {
    "nearest_2x": lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="nearest")),
    "nearest_size": lambda: Fn(lambda x: F.interpolate(x, size=(20, 30), mode="nearest")),
    "nearest_down": lambda: Fn(lambda x: F.interpolate(x, size=(6, 5), mode="nearest")),
    "bilinear_2x": lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
    "bilinear_2x_aligned": lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)),
    "bilinear_size": lambda: Fn(lambda x: F.interpolate(x, size=(17, 29), mode="bilinear", align_corners=False)),
    "bilinear_size_aligned": lambda: Fn(lambda x: F.interpolate(x, size=(17, 29), mode="bilinear", align_corners=True)),
    "bilinear_down": lambda: Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)),
    "bicubic_2x": lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)),
    "upsample_module": lambda: Layer(nn.Upsample(scale_factor=2, mode="bilinear")),
    "upsampling_nearest_module": lambda: Layer(nn.UpsamplingNearest2d(scale_factor=3)),
    "grid_sample": lambda: GridSample(align_corners=False),
    "grid_sample_nearest_border": lambda: GridSample(mode="nearest", padding_mode="border", align_corners=True),
    "grid_sample_reflection_aligned": lambda: GridSample(padding_mode="reflection", align_corners=True),
    "grid_sample_reflection": lambda: GridSample(padding_mode="reflection", align_corners=False),
    "pixel_shuffle": lambda: Fn(lambda x: F.pixel_shuffle(x, 2)), "pixel_unshuffle": lambda: Fn(lambda x: F.pixel_unshuffle(x, 2)),
    "space_to_depth_reshape": lambda: Fn(lambda x: x.reshape(1, 8, 6, 2, 6, 2).permute(0, 1, 3, 5, 2, 4).reshape(1, 32, 6, 6)),
}


class Positions(nn.Module):
    """Coordinates made in the graph: arange, fill, cumsum, as position encodings and coordinate maps make them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = torch.arange(x.shape[2], dtype=x.dtype).reshape(1, 1, -1, 1) / x.shape[2]
        return x + ys + torch.full_like(x[:, :1], 0.25) + torch.ones(1, 1, 1, x.shape[3])


MISC = {
    "cast_int": lambda: Fn(lambda x: (x * 4).to(torch.int32).to(x.dtype)),
    "cast_bool": lambda: Fn(lambda x: (x > 0).to(x.dtype) * x),
    "fill_like": lambda: Fn(lambda x: torch.zeros_like(x) + torch.ones_like(x[:, :1]) * 0.5 + x),
    "arange_fill": Positions, "cumsum": lambda: Fn(lambda x: torch.cumsum(x, dim=3)),
    "cumsum_channels": lambda: Fn(lambda x: torch.cumsum(x, dim=1)),
    "topk_values": lambda: Fn(lambda x: torch.topk(x, 3, dim=1)[0]),
    "topk_indices": lambda: Fn(lambda x: torch.topk(x.flatten(2), 5, dim=2)[1].float()),
    "tril": lambda: Fn(torch.tril), "triu_offset": lambda: Fn(lambda x: torch.triu(x, 1)),
    "sort": lambda: Fn(lambda x: torch.sort(x, dim=1, descending=True)[0]),
    "argsort": lambda: Fn(lambda x: torch.argsort(x, dim=3).float()),
    "alias": lambda: Fn(lambda x: torch.ops.aten.alias(x) * 2), "dropout_eval": lambda: Layer(nn.Dropout(0.5), post=lambda y: y * 2),
    "output_is_input": lambda: Layer(nn.Dropout(0.5)), "identity": lambda: Layer(nn.Identity(), post=lambda y: y * 1.0),
    "embedding": lambda: Layer(nn.Embedding(16, 4), lambda x: (x.abs() * 4).long().clamp(0, 15)[:, 0]),
    "one_hot": lambda: Fn(lambda x: F.one_hot((x.abs() * 2).long().clamp(0, 3)[:, 0], 4).float()),
}

# What coremltools 9.0 refuses, as measured by scripts/mil_coverage.py (which flags any change): converter
# limits, not evaluator ones. The cases stay in the corpus so a converter release that lifts one is noticed.
# (alias and max_pool_default_stride were refused, and remainder_one converted to x - x; exporters/coreml_torch_ops.py
# fixes all three.)
CONVERTER_REFUSES = {
    "celu": "no converter for aten.celu", "logsigmoid": "no converter for aten.log_sigmoid",
    "fmod": "no converter for aten.fmod", "trunc": "no converter for aten.trunc", "lerp": "no converter for aten.lerp",
    "prod": "no converter for aten.prod.dim_int", "window_attention_rank6": "Core ML tensors are rank 5 at most",
    "max_pool_dilated": "MIL max_pool has no dilation", "pad_circular": "MIL pad has no circular mode",
    "gather_by_argmax": "no converter for aten.take_along_dim", "unfold_patches": "no converter for aten.unfold",
    "bicubic_2x": "no converter for aten.upsample_bicubic2d", "output_is_input": "a program whose output is its "
    "input is refused (the output var keeps the input's name)",
}

# Converted, but not to what PyTorch computes: the evaluator runs the program as written, so these differ from
# PyTorch by construction (the coverage script reports them; the test checks they still do).
CONVERTER_UNFAITHFUL = {
    "clamp_tensor_crossed": "clamp with tensor bounds becomes maximum(minimum(x, max), min): where min > max "
    "Core ML returns min, PyTorch max",
}
# Step functions of the input (comparisons, indices, rounding): at fp16 the program sees the input rounded to
# fp16, and an output flips wherever that rounding crosses a step, on the device too. These are judged at fp16
# against PyTorch given the same rounded input.
DISCRETE = {
    "eq", "ne", "gt", "ge", "lt", "le", "logical_and", "logical_or", "logical_xor", "logical_not", "where",
    "masked_fill", "argmax", "argmin", "max_indices", "topk_indices", "argsort", "scatter", "gather_along_axis",
    "one_hot", "embedding", "cast_int", "cast_bool", "floor", "ceil", "round", "sign", "floor_divide", "remainder",
    "threshold", "relu6", "hardtanh", "hardtanh_int_bounds", "clamp_int_bounds", "clamp", "clamp_min",
    "clamp_tensor", "remainder_one", "mask_assign",
}

GROUPS = {"activation": ACTIVATIONS, "normalisation": NORMS, "elementwise": ELEMENTWISE,
          "comparison and logic": COMPARE_LOGIC, "reduction": REDUCTIONS, "matmul and attention": MATMUL,
          "convolution": CONVS, "pooling": POOLS, "padding": PADS, "shape and indexing": SHAPES, "resize": RESIZES,
          "misc": MISC}
OP_CASES: tuple[OpCase, ...] = tuple(case for group, table in GROUPS.items() for case in _cases(group, table))


def build_case(case: OpCase, seed: int = 0) -> nn.Module:
    """A seeded instance; BatchNorm gets statistics that are not the identity, so the case tests something."""
    torch.manual_seed(seed)
    module = case.build().eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
        if isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)) and getattr(m, "weight", None) is not None:
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module


def op_input(seed: int = 0) -> torch.Tensor:
    return torch.randn(OP_INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))
