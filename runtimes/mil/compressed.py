"""Compressed-weight and int8 activation ops: what palettized, int8 and sparse Core ML programs contain.

The constexpr ops rebuild a constant weight on device before use; they are decompressed here once per
program and kept, since their inputs never change. Semantics follow coremltools' op definitions
(iOS16 constexpr_ops.py, iOS17 quantization_ops.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from edgeport.runtimes.mil.registry import MilEvalError, OpArgs, register_mil_op

_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _const(a: OpArgs, key: str) -> np.ndarray | None:
    var = a.op.inputs.get(key)
    if var is None:
        return None
    if var.val is None:
        raise MilEvalError(f"{a.op.op_type} {a.op.name}: {key} must be a constant")
    return np.asarray(var.val)


def _along_axis(param: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    """A per-channel vector shaped to broadcast along `axis` of a rank-`rank` tensor (a scalar stays one)."""
    if param.ndim == 0 or param.ndim == rank:
        return param
    if axis is None:
        raise MilEvalError("a per-channel scale needs an axis")
    shape = [1] * rank
    shape[axis % rank] = param.size
    return param.reshape(shape)


def _cached(a: OpArgs, build: Callable[[], np.ndarray]) -> torch.Tensor:
    cache = a.op.__dict__.setdefault("_edgeport_value", {})
    if "value" not in cache:
        cache["value"] = torch.from_numpy(np.ascontiguousarray(build()).astype(np.float32))
    return cache["value"]


@register_mil_op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(a: OpArgs) -> torch.Tensor:
    def build() -> np.ndarray:
        data = _const(a, "quantized_data").astype(np.float32)
        axis = int(_const(a, "axis"))
        zero = _along_axis(_const(a, "zero_point").astype(np.float32), data.ndim, axis)
        scale = _along_axis(_const(a, "scale").astype(np.float32), data.ndim, axis)
        return (data - zero) * scale
    return _cached(a, build)


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """n-bit unsigned values packed from the least significant bit of the first byte upward."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")
    bits = bits[: count * nbits].reshape(count, nbits).astype(np.int64)
    return bits @ (1 << np.arange(nbits, dtype=np.int64))


@register_mil_op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(a: OpArgs) -> torch.Tensor:
    def build() -> np.ndarray:
        lut = _const(a, "lut").astype(np.float32)
        shape = tuple(int(s) for s in _const(a, "shape"))
        if lut.ndim != 1:
            raise MilEvalError(f"constexpr_lut_to_dense {a.op.name}: only a per-tensor (1-D) palette is implemented")
        nbits = int(np.log2(lut.size))
        return lut[unpack_bits(_const(a, "indices"), nbits, int(np.prod(shape)))].reshape(shape)
    return _cached(a, build)


@register_mil_op("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(a: OpArgs) -> torch.Tensor:
    def build() -> np.ndarray:
        shape = tuple(int(s) for s in _const(a, "shape"))
        dense = np.zeros(int(np.prod(shape)), dtype=np.float32)
        mask = np.unpackbits(_const(a, "mask").astype(np.uint8), bitorder="little")[: dense.size]
        dense[np.flatnonzero(mask)] = _const(a, "nonzero_data").astype(np.float32)
        return dense.reshape(shape)
    return _cached(a, build)


def _scale_zero(a: OpArgs, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    axis = a.value("axis")
    scale = _along_axis(_const(a, "scale").astype(np.float32), rank, axis)
    zero = _const(a, "zero_point")
    zero = np.zeros((), np.float32) if zero is None else _along_axis(zero.astype(np.float32), rank, axis)
    return torch.from_numpy(np.asarray(scale)), torch.from_numpy(np.asarray(zero))


@register_mil_op("quantize")
def quantize(a: OpArgs) -> torch.Tensor:
    x = a.tensor("input")
    scale, zero = _scale_zero(a, x.dim())
    lo, hi = _INT_RANGES[a.value("output_dtype")]
    return torch.clamp(torch.round(x / scale) + zero, lo, hi)   # round half to even, as numpy and Core ML


@register_mil_op("dequantize")
def dequantize(a: OpArgs) -> torch.Tensor:
    q = a.tensor("input").float()
    scale, zero = _scale_zero(a, q.dim())
    return (q - zero) * scale
