"""MIL ops as small PyTorch functions, registered by name in runtimes/mil/registry.py.

Semantics follow coremltools' op definitions (coremltools/converters/mil/mil/ops/defs); the resize ops are
in runtimes/mil/resize.py, the compressed-weight and int8 ops in runtimes/mil/compressed.py, activations,
comparisons, logic and normalisations in runtimes/mil/activations.py, slicing, gathering, scattering, sorting and
tensor-making in runtimes/mil/indexing.py, reductions in runtimes/mil/reductions.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgeport.runtimes.mil.registry import MilEvalError, OpArgs, register_mil_op, round_to_dtype


def _torch_pad(pairs: list[int]) -> list[int]:
    """MIL lists (begin, end) from the first padded axis on; F.pad wants the last axis first."""
    out: list[int] = []
    for i in range(len(pairs) // 2 - 1, -1, -1):
        out += [pairs[2 * i], pairs[2 * i + 1]]
    return out


def _spatial_pads(a: OpArgs, x: torch.Tensor, kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    pad_type = a.value("pad_type", "valid")
    nd = len(kernel)
    if pad_type == "custom":
        return list(a.value("pad", [0] * 2 * nd))
    if pad_type == "valid":
        return [0] * 2 * nd
    if pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(x.shape[-nd:], kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            begin = total - total // 2 if pad_type == "same_lower" else total // 2
            pads += [begin, total - begin]
        return pads
    raise MilEvalError(f"pad_type {pad_type!r} is not implemented")


@register_mil_op("conv")
def conv(a: OpArgs) -> torch.Tensor:
    x, w = a.tensor("x"), a.tensor("weight")
    bias = a.tensor("bias") if a.has("bias") else None
    nd = w.dim() - 2
    strides = a.value("strides", [1] * nd)
    dilations = a.value("dilations", [1] * nd)
    x = F.pad(x, _torch_pad(_spatial_pads(a, x, list(w.shape[2:]), strides, dilations)))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, bias, strides, 0, dilations, a.value("groups", 1))


@register_mil_op("conv_transpose")
def conv_transpose(a: OpArgs) -> torch.Tensor:
    """The full ("valid") transposed convolution, then pads cropped from each side; output_shape must agree."""
    x, w = a.tensor("x"), a.tensor("weight")
    nd = w.dim() - 2
    strides, dilations = a.value("strides", [1] * nd), a.value("dilations", [1] * nd)
    bias = a.tensor("bias") if a.has("bias") else None
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    y = fn(x, w, bias, strides, 0, 0, a.value("groups", 1), dilations)
    pad_type = a.value("pad_type", "valid")
    if pad_type == "custom":
        pads = list(a.value("pad", [0] * 2 * nd))
    elif pad_type == "same":
        totals = [full - size * s for full, size, s in zip(y.shape[2:], x.shape[2:], strides)]
        pads = [p for t in totals for p in (t // 2, t - t // 2)]
    else:
        pads = [0] * 2 * nd
    for i in range(nd):
        y = y.narrow(2 + i, pads[2 * i], y.shape[2 + i] - pads[2 * i] - pads[2 * i + 1])
    shape = a.value("output_shape")
    if shape is not None and list(y.shape[-nd:]) != list(shape)[-nd:]:
        raise MilEvalError(f"conv_transpose output_shape {shape} differs from the computed {list(y.shape)}")
    return y


def _pool(a: OpArgs, kind: str) -> torch.Tensor:
    x = a.tensor("x")
    kernel = a.value("kernel_sizes")
    strides = a.value("strides", [1] * len(kernel))
    pads = _torch_pad(_spatial_pads(a, x, kernel, strides, [1] * len(kernel)))
    ceil_mode = bool(a.value("ceil_mode", False))
    if kind == "max":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
        return fn(F.pad(x, pads, value=-math.inf), kernel, strides, 0, ceil_mode=ceil_mode)
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]
    summed = fn(F.pad(x, pads), kernel, strides, 0, ceil_mode=ceil_mode)
    if bool(a.value("exclude_padding_from_average", False)) and any(pads):
        return summed / fn(F.pad(torch.ones_like(x[:, :1]), pads), kernel, strides, 0, ceil_mode=ceil_mode)
    return summed


register_mil_op("max_pool")(lambda a: _pool(a, "max"))
register_mil_op("avg_pool")(lambda a: _pool(a, "avg"))


def _real_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Integer operands are shape arithmetic (a mask's element count over a broadcast size): truncated, and an
    empty selection's 0 / 0 is 0, so broadcasting nothing gives nothing."""
    if x.is_floating_point() or y.is_floating_point():
        return torch.div(x, y)
    safe = torch.where(y != 0, y, torch.ones_like(y))
    return torch.where(y != 0, torch.div(x, safe, rounding_mode="trunc"), torch.zeros_like(x))


_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "real_div": _real_div,
           "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow,
           "floor_div": lambda x, y: torch.div(x, y, rounding_mode="floor")}
for _name, _fn in _BINARY.items():
    register_mil_op(_name)(lambda a, fn=_fn: fn(a.tensor("x"), a.tensor("y")))

_UNARY = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp,
          "sqrt": torch.sqrt, "abs": torch.abs, "log": torch.log, "square": torch.square,
          "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "sin": torch.sin, "cos": torch.cos,
          "tan": torch.tan, "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh,
          "cosh": torch.cosh, "atanh": torch.atanh, "exp2": torch.exp2,
          "identity": lambda x: x, "relu6": lambda x: torch.clamp(x, 0.0, 6.0), "silu": F.silu,
          "softplus": F.softplus, "softsign": F.softsign, "erf": torch.erf, "sign": torch.sign}
for _name, _fn in _UNARY.items():
    register_mil_op(_name)(lambda a, fn=_fn: fn(a.tensor("x")))


@register_mil_op("inverse")
def inverse(a: OpArgs) -> torch.Tensor:
    """Core ML's reciprocal adds epsilon (default 1e-4) before dividing: y = 1 / (x + epsilon)."""
    return 1.0 / (a.tensor("x") + a.value("epsilon", 1e-4))


@register_mil_op("rsqrt")
def rsqrt(a: OpArgs) -> torch.Tensor:
    return torch.rsqrt(a.tensor("x") + a.value("epsilon", 1e-12))


@register_mil_op("leaky_relu")
def leaky_relu(a: OpArgs) -> torch.Tensor:
    return F.leaky_relu(a.tensor("x"), a.value("alpha", 0.01))


@register_mil_op("prelu")
def prelu(a: OpArgs) -> torch.Tensor:
    return F.prelu(a.tensor("x"), a.tensor("alpha"))


@register_mil_op("elu")
def elu(a: OpArgs) -> torch.Tensor:
    return F.elu(a.tensor("x"), a.value("alpha", 1.0))


@register_mil_op("clip")
def clip(a: OpArgs) -> torch.Tensor:
    return torch.clamp(a.tensor("x"), a.value("alpha"), a.value("beta"))


@register_mil_op("softmax")
def softmax(a: OpArgs) -> torch.Tensor:
    return torch.softmax(a.tensor("x"), dim=a.value("axis", -1))


@register_mil_op("concat")
def concat(a: OpArgs) -> torch.Tensor:
    values = [v.reshape(1) if v.dim() == 0 else v for v in a.tensors("values")]   # scalars (shape arithmetic)
    axis = a.value("axis") % values[0].dim()
    if a.value("interleave", False):
        # equal shapes, taken one slice of each in turn along the axis (what a channel shuffle after a concat
        # becomes): stack behind the axis, then merge the two
        merged = list(values[0].shape)
        merged[axis] *= len(values)
        return torch.stack(values, dim=axis + 1).reshape(merged)
    return torch.cat(values, dim=axis)


@register_mil_op("stack")
def stack(a: OpArgs) -> torch.Tensor:
    return torch.stack(a.tensors("values"), dim=a.value("axis"))


@register_mil_op("cast")
def cast(a: OpArgs) -> torch.Tensor:
    from coremltools.converters.mil.mil import types

    return round_to_dtype(a.tensor("x"), types.string_to_builtin(a.value("dtype")))


@register_mil_op("reshape")
def reshape(a: OpArgs) -> torch.Tensor:
    shape = a.tensor("shape").tolist()
    return a.tensor("x").reshape(shape)


@register_mil_op("transpose")
def transpose(a: OpArgs) -> torch.Tensor:
    return a.tensor("x").permute(a.value("perm"))


@register_mil_op("split")
def split(a: OpArgs) -> tuple[torch.Tensor, ...]:
    x, axis = a.tensor("x"), a.value("axis")
    sizes = a.value("split_sizes")
    if sizes is None:
        count = a.value("num_splits")
        sizes = [x.shape[axis] // count] * count
    return torch.split(x, list(sizes), dim=axis)


@register_mil_op("tile")
def tile(a: OpArgs) -> torch.Tensor:
    return a.tensor("x").repeat(*a.tensor("reps").tolist())


@register_mil_op("expand_dims")
def expand_dims(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    rank = x.dim() + len(a.value("axes"))
    for axis in sorted(ax % rank for ax in a.value("axes")):
        x = x.unsqueeze(axis)
    return x


@register_mil_op("squeeze")
def squeeze(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    axes = a.value("axes")
    if axes is None:
        return x.squeeze()
    return x.squeeze(tuple(ax % x.dim() for ax in axes))


@register_mil_op("matmul")
def matmul(a: OpArgs) -> torch.Tensor:
    x, y = a.tensor("x"), a.tensor("y")
    if a.value("transpose_x", False):
        x = x.transpose(-1, -2)
    if a.value("transpose_y", False):
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@register_mil_op("linear")
def linear(a: OpArgs) -> torch.Tensor:
    return F.linear(a.tensor("x"), a.tensor("weight"), a.tensor("bias") if a.has("bias") else None)


@register_mil_op("batch_norm")
def batch_norm(a: OpArgs) -> torch.Tensor:
    return F.batch_norm(a.tensor("x"), a.tensor("mean"), a.tensor("variance"),
                        a.tensor("gamma") if a.has("gamma") else None, a.tensor("beta") if a.has("beta") else None,
                        training=False, eps=a.value("epsilon", 1e-5))


@register_mil_op("pad")
def pad(a: OpArgs) -> torch.Tensor:
    mode = a.value("mode", "constant")
    pairs = a.tensor("pad").tolist()
    torch_mode = {"constant": "constant", "reflect": "reflect", "replicate": "replicate"}[mode]
    if torch_mode == "constant":
        return F.pad(a.tensor("x"), _torch_pad(pairs), value=a.value("constant_val", 0.0))
    # reflect/replicate pad only spatial axes in torch: drop the leading all-zero pairs
    while len(pairs) > 4 and pairs[0] == pairs[1] == 0:
        pairs = pairs[2:]
    return F.pad(a.tensor("x"), _torch_pad(pairs), mode=torch_mode)


@register_mil_op("pixel_shuffle")
def pixel_shuffle(a: OpArgs) -> torch.Tensor:
    return F.pixel_shuffle(a.tensor("x"), a.value("upscale_factor"))


@register_mil_op("pixel_unshuffle")
def pixel_unshuffle(a: OpArgs) -> torch.Tensor:
    return F.pixel_unshuffle(a.tensor("x"), a.value("downscale_factor"))


@register_mil_op("depth_to_space")
def depth_to_space(a: OpArgs) -> torch.Tensor:
    """TensorFlow's DCR order: the block index is the outer part of the channel, unlike pixel_shuffle."""
    x, bs = a.tensor("x"), a.value("block_size")
    n, c, h, w = x.shape
    x = x.reshape(n, bs, bs, c // bs ** 2, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // bs ** 2, h * bs, w * bs)


@register_mil_op("space_to_depth")
def space_to_depth(a: OpArgs) -> torch.Tensor:
    x, bs = a.tensor("x"), a.value("block_size")
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // bs, bs, w // bs, bs).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, c * bs ** 2, h // bs, w // bs)

