"""MIL resize ops: 1-D sampling grids written out exactly as coremltools' op docstrings define them, for every
sampling mode (upsample_bilinear's align_corners, resize_bilinear's five modes, nearest neighbour)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from edgeport.runtimes.mil.registry import MilEvalError, OpArgs, register_mil_op


def bilinear_grid(size_in: int, size_out: int, mode: str) -> torch.Tensor:
    i = torch.arange(size_out, dtype=torch.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            point = torch.full_like(i, (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            point = i * ((size_in - 1) / (size_out - 1))
    elif mode == "DEFAULT":
        spacing = (size_in - size_in / size_out) / (size_out - 1) if size_out > 1 else 0.0
        point = i * spacing
    elif mode == "OFFSET_CORNERS":
        delta = max(1.0, (size_in - 1) / size_out)
        spacing = ((size_out - 1) * delta) / (size_out - 1) if size_out > 1 else 0.0
        point = 0.5 * delta + i * spacing
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        point = i * spacing + 0.5 * spacing - 0.5
    elif mode == "ASYMMETRIC":      # upsample_bilinear with neither aligned corners nor half-pixel centres
        point = i * (size_in / size_out)
    else:
        raise MilEvalError(f"bilinear sampling mode {mode!r} is not implemented")
    return point.clamp(0, size_in - 1)


def _lerp_axis(x: torch.Tensor, grid: torch.Tensor, axis: int) -> torch.Tensor:
    n = x.shape[axis]
    lo = grid.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (grid - lo.double()).float()
    shape = [1] * x.dim()
    shape[axis] = -1
    frac = frac.reshape(shape)
    return x.index_select(axis, lo) * (1 - frac) + x.index_select(axis, hi) * frac


def bilinear_resize(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    x = _lerp_axis(x, bilinear_grid(x.shape[-2], out_h, mode), x.dim() - 2)
    return _lerp_axis(x, bilinear_grid(x.shape[-1], out_w, mode), x.dim() - 1)


def _scaled(size: int, scale: float) -> int:
    return int(math.floor(size * np.float32(scale)))


@register_mil_op("upsample_bilinear")
def upsample_bilinear(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    out_h = _scaled(x.shape[-2], a.value("scale_factor_height", 1.0))
    out_w = _scaled(x.shape[-1], a.value("scale_factor_width", 1.0))
    align = a.value("align_corners", True)
    half_pixel = a.value("half_pixel_centers", not align)    # iOS16's input; its default is !align_corners
    if align and half_pixel:
        raise MilEvalError("upsample_bilinear: align_corners and half_pixel_centers are both true, which the op "
                           "does not define")
    mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half_pixel else "ASYMMETRIC"
    return bilinear_resize(x, out_h, out_w, mode)


@register_mil_op("resize_bilinear")
def resize_bilinear(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    return bilinear_resize(x, a.value("target_size_height", 1), a.value("target_size_width", 1),
                           a.value("sampling_mode", "DEFAULT"))


def _nearest_index(size_in: int, size_out: int) -> torch.Tensor:
    """Source index floor(i * in / out) in float32. coremltools inflates a fractional scale by an epsilon only so
    that floor(in * scale) gives the right output size; like the bilinear op's documented behaviour, the
    mapping is taken from the sizes. (An assumption: not checkable against a device on Linux.)"""
    ratio = torch.tensor(size_in / size_out, dtype=torch.float32)
    idx = torch.floor(torch.arange(size_out, dtype=torch.float32) * ratio).long()
    return idx.clamp(0, size_in - 1)


def _nearest_resize(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    x = x.index_select(x.dim() - 2, _nearest_index(x.shape[-2], out_h))
    return x.index_select(x.dim() - 1, _nearest_index(x.shape[-1], out_w))


@register_mil_op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    return _nearest_resize(x, _scaled(x.shape[-2], a.value("scale_factor_height", 1)),
                           _scaled(x.shape[-1], a.value("scale_factor_width", 1)))


@register_mil_op("resize_nearest_neighbor")
def resize_nearest_neighbor(a: OpArgs) -> torch.Tensor:
    return _nearest_resize(a.tensor("x"), a.value("target_size_height", 1), a.value("target_size_width", 1))


_TORCH_PADDING = {("constant", None): "zeros", ("border", None): "border", ("reflection", True): "reflection",
                  ("symmetric", False): "reflection"}


@register_mil_op("resample")
def resample(a: OpArgs) -> torch.Tensor:
    """grid_sample: coordinates (x, y) per output pixel. MIL's reflection (about the edge pixels) is PyTorch's
    with align_corners=True, MIL's symmetric PyTorch's with align_corners=False; the other pairings raise."""
    x, coords = a.tensor("x"), a.tensor("coordinates")
    align = bool(a.value("align_corners", False))
    mode, padding = a.value("sampling_mode"), a.value("padding_mode")
    key = (padding, None) if padding in ("constant", "border") else (padding, align)
    if mode not in ("bilinear", "nearest") or key not in _TORCH_PADDING:
        raise MilEvalError(f"resample with sampling {mode!r}, padding {padding!r}, align_corners={align} "
                           "is not implemented (runtimes/mil/resize.py)")
    coordinates_mode = a.value("coordinates_mode")
    size = torch.tensor([x.shape[-1], x.shape[-2]], dtype=coords.dtype)
    if coordinates_mode == "unnormalized":
        coords = 2 * coords / (size - 1) - 1 if align else (2 * coords + 1) / size - 1
    elif coordinates_mode == "normalized_zero_to_one":
        coords = 2 * coords - 1
    elif coordinates_mode != "normalized_minus_one_to_one":
        raise MilEvalError(f"resample coordinates_mode {coordinates_mode!r} is not implemented")
    fill = float(a.value("padding_value", 0.0)) if padding == "constant" else 0.0
    y = F.grid_sample(x - fill, coords, mode=mode, padding_mode=_TORCH_PADDING[key], align_corners=align)
    return y + fill
