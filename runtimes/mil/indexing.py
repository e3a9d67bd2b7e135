"""MIL slicing, gathering, scattering, sorting and tensor-making ops, one function an op; semantics follow
coremltools' op definitions (mil/ops/defs/iOS15 and iOS16: tensor_transformation.py, scatter_gather.py,
tensor_operation.py, image_resizing.py's crop)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeport.runtimes.mil.registry import MilEvalError, OpArgs, register_mil_op


def _axis_positions(size: int, begin: int | None, end: int | None, stride: int) -> torch.Tensor:
    """Python's slice rules (negative indices, clamping, negative strides) as explicit positions."""
    return torch.arange(*slice(begin, end, stride).indices(size), dtype=torch.int64)


@register_mil_op("slice_by_index")
def slice_by_index(a: OpArgs) -> torch.Tensor:
    """x[begin:end:stride] per axis; begin_mask/end_mask drop a bound, squeeze_mask indexes at begin."""
    x = a.tensor("x")
    rank = x.dim()
    begin, end = a.tensor("begin").tolist(), a.tensor("end").tolist()
    stride = a.value("stride") or [1] * rank
    begin_mask = a.value("begin_mask") or [False] * rank
    end_mask = a.value("end_mask") or [False] * rank
    squeeze = a.value("squeeze_mask") or [False] * rank
    for axis in range(rank):
        if squeeze[axis]:
            x = x.narrow(axis, begin[axis] % x.shape[axis], 1)
            continue
        lo = None if begin_mask[axis] else begin[axis]
        hi = None if end_mask[axis] else end[axis]
        if (lo, hi, stride[axis]) != (None, None, 1):
            x = x.index_select(axis, _axis_positions(x.shape[axis], lo, hi, stride[axis]))
    dropped = [axis for axis in range(rank) if squeeze[axis]]
    return x.squeeze(tuple(dropped)) if dropped else x


@register_mil_op("slice_by_size")
def slice_by_size(a: OpArgs) -> torch.Tensor:
    """size -1 runs to the end of the axis."""
    x = a.tensor("x")
    for axis, (start, size) in enumerate(zip(a.tensor("begin").tolist(), a.tensor("size").tolist())):
        start %= max(x.shape[axis], 1)
        x = x.narrow(axis, start, x.shape[axis] - start if size == -1 else size)
    return x


@register_mil_op("crop")
def crop(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    (top, bottom), (left, right) = a.value("crop_height"), a.value("crop_width")
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


@register_mil_op("reverse")
def reverse(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    axes = a.value("axes")
    return torch.flip(x, dims=list(range(x.dim())) if axes is None else [ax % x.dim() for ax in axes])


def _wrapped(indices: torch.Tensor, size: int) -> torch.Tensor:
    """MIL indices may count from the end, as in numpy."""
    return torch.where(indices < 0, indices + size, indices).long()


@register_mil_op("gather")
def gather(a: OpArgs) -> torch.Tensor:
    """tf.gather: x.shape[:axis] + indices.shape + x.shape[axis+1:]."""
    x, axis = a.tensor("x"), a.value("axis", 0)
    if a.value("batch_dims", 0):
        raise MilEvalError("gather with batch_dims > 0 is not implemented (add it to runtimes/mil/indexing.py)")
    axis %= x.dim()
    indices = _wrapped(a.tensor("indices"), x.shape[axis])
    picked = x.index_select(axis, indices.reshape(-1))
    return picked.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


@register_mil_op("gather_along_axis")
def gather_along_axis(a: OpArgs) -> torch.Tensor:
    x, axis = a.tensor("x"), a.value("axis", 0) % a.tensor("x").dim()
    return torch.gather(x, axis, _wrapped(a.tensor("indices"), x.shape[axis]))


@register_mil_op("gather_nd")
def gather_nd(a: OpArgs) -> torch.Tensor:
    """indices' last axis addresses the leading axes of x: out = x[indices[..., 0], indices[..., 1], ...]."""
    x, indices = a.tensor("x"), a.tensor("indices").long()
    if a.value("batch_dims", 0):
        raise MilEvalError("gather_nd with batch_dims > 0 is not implemented (add it to runtimes/mil/indexing.py)")
    return x[tuple(_wrapped(indices[..., i], x.shape[i]) for i in range(indices.shape[-1]))]


_SCATTER_REDUCE = {"mul": "prod", "max": "amax", "min": "amin"}


@register_mil_op("scatter")
def scatter(a: OpArgs) -> torch.Tensor:
    """data with the slices at `indices` along `axis` replaced by (or combined with) updates' slices."""
    data, updates, axis = a.tensor("data"), a.tensor("updates"), a.value("axis", 0) % a.tensor("data").dim()
    indices, mode = a.tensor("indices"), a.value("mode", "add")
    if indices.dim() != 1:
        raise MilEvalError("scatter with indices of rank > 1 is not implemented (add it to runtimes/mil/indexing.py)")
    indices = _wrapped(indices, data.shape[axis])
    shape = [1] * data.dim()
    shape[axis] = -1
    return _scatter_mode(data, axis, indices.reshape(shape).expand_as(updates), updates, mode)


@register_mil_op("scatter_along_axis")
def scatter_along_axis(a: OpArgs) -> torch.Tensor:
    data, axis = a.tensor("data"), a.value("axis", 0) % a.tensor("data").dim()
    indices = _wrapped(a.tensor("indices"), data.shape[axis])
    return _scatter_mode(data, axis, indices, a.tensor("updates"), a.value("mode", "add"))


def _scatter_mode(data: torch.Tensor, axis: int, index: torch.Tensor, updates: torch.Tensor,
                  mode: str) -> torch.Tensor:
    if mode == "update":
        return data.scatter(axis, index, updates)
    if mode == "add":
        return data.scatter_add(axis, index, updates)
    if mode == "sub":
        return data.scatter_add(axis, index, -updates)
    if mode == "div":
        return data.scatter_reduce(axis, index, 1.0 / updates, "prod")
    if mode in _SCATTER_REDUCE:
        return data.scatter_reduce(axis, index, updates, _SCATTER_REDUCE[mode])
    raise MilEvalError(f"scatter mode {mode!r} is not implemented")


@register_mil_op("one_hot")
def one_hot(a: OpArgs) -> torch.Tensor:
    indices, size = a.tensor("indices").long(), int(a.tensor("one_hot_vector_size"))
    on, off = a.value("on_value", 1.0), a.value("off_value", 0.0)
    hot = F.one_hot(indices.clamp(0, size - 1), size).bool() & (indices >= 0).unsqueeze(-1)
    y = torch.where(hot, torch.tensor(float(on)), torch.tensor(float(off)))
    return y.movedim(-1, a.value("axis", -1) % y.dim())


@register_mil_op("topk")
def topk(a: OpArgs) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
    x, k = a.tensor("x"), int(a.value("k"))
    values, indices = torch.topk(x, k, dim=a.value("axis", -1), largest=not a.value("ascending", False),
                                 sorted=True)
    return (values, indices) if a.value("return_indices", True) else values


@register_mil_op("argsort")
def argsort(a: OpArgs) -> torch.Tensor:
    """Stable, so ties keep their order (as coremltools' own value inference, numpy's argsort)."""
    return torch.sort(a.tensor("x"), dim=a.value("axis", -1), descending=not a.value("ascending", False),
                      stable=True).indices


@register_mil_op("cumsum")
def cumsum(a: OpArgs) -> torch.Tensor:
    x, axis = a.tensor("x"), a.value("axis", 0)
    if a.value("reverse", False):
        x = x.flip(axis)
    y = torch.cumsum(x, dim=axis)
    if a.value("exclusive", False):
        y = y - x
    return y.flip(axis) if a.value("reverse", False) else y


@register_mil_op("fill_like")
def fill_like(a: OpArgs) -> torch.Tensor:
    return torch.full(a.tensor("ref_tensor").shape, float(a.value("value", 0.0)))


@register_mil_op("fill")
def fill(a: OpArgs) -> torch.Tensor:
    return torch.full(a.tensor("shape").tolist(), float(a.value("value", 0.0)))


@register_mil_op("range_1d")
def range_1d(a: OpArgs) -> torch.Tensor:
    start, end, step = (a.tensor(k).item() for k in ("start", "end", "step"))
    return torch.arange(start, end, step)


@register_mil_op("shape")
def shape(a: OpArgs) -> torch.Tensor:
    """Dynamic-size programs (--dynamic-hw) read sizes at run time."""
    return torch.tensor(a.tensor("x").shape, dtype=torch.int64)


@register_mil_op("band_part")
def band_part(a: OpArgs) -> torch.Tensor:
    """Keeps `lower` sub-diagonals and `upper` super-diagonals of the last two axes (negative: all of them)."""
    x = a.tensor("x")
    lower, upper = a.value("lower", -1), a.value("upper", -1)
    m = torch.arange(x.shape[-2]).unsqueeze(1)
    n = torch.arange(x.shape[-1]).unsqueeze(0)
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    return torch.where(keep, x, torch.zeros_like(x))


@register_mil_op("non_zero")
def non_zero(a: OpArgs) -> torch.Tensor:
    """[N, rank] coordinates of the non-zero elements, in row-major order (a boolean mask's positions)."""
    return torch.nonzero(a.tensor("x"))


@register_mil_op("scatter_nd")
def scatter_nd(a: OpArgs) -> torch.Tensor:
    """data with the slices addressed by indices' last axis replaced (update) or added to (add, sub)."""
    data, indices, updates = a.tensor("data"), a.tensor("indices").long(), a.tensor("updates")
    mode = a.value("mode", "add")
    if mode not in ("update", "add", "sub"):
        raise MilEvalError(f"scatter_nd mode {mode!r} is not implemented (runtimes/mil/indexing.py)")
    where = tuple(_wrapped(indices[..., i], data.shape[i]) for i in range(indices.shape[-1]))
    values = -updates if mode == "sub" else updates
    return data.index_put(where, values.to(data.dtype), accumulate=mode != "update")
