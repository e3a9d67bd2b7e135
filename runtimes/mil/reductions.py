"""MIL reductions, one registry line an op; semantics follow coremltools' mil/ops/defs/iOS15/reduction.py:
`axes` None reduces every axis, `keep_dims` keeps them as size 1; argmax/argmin take one `axis`."""
from __future__ import annotations

from typing import Callable

import torch

from edgeport.runtimes.mil.registry import MilOp, OpArgs, register_mil_op


def _reduce(fn: Callable[[torch.Tensor, tuple[int, ...], bool], torch.Tensor]) -> MilOp:
    def op(a: OpArgs) -> torch.Tensor:
        x = a.tensor("x")
        axes = a.value("axes")
        dims = tuple(range(x.dim())) if axes is None else tuple(ax % x.dim() for ax in axes)
        return fn(x, dims, bool(a.value("keep_dims", False)))
    return op


def _prod(x: torch.Tensor, dims: tuple[int, ...], keep: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


_REDUCTIONS = {
    "reduce_mean": lambda x, d, k: x.mean(dim=d, keepdim=k), "reduce_sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "reduce_max": lambda x, d, k: x.amax(dim=d, keepdim=k), "reduce_min": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "reduce_prod": _prod,
    "reduce_sum_square": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "reduce_log_sum": lambda x, d, k: torch.log(x.sum(dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}
for _name, _fn in _REDUCTIONS.items():
    register_mil_op(_name)(_reduce(_fn))


def _arg(fn: Callable[..., torch.Tensor]) -> MilOp:
    def op(a: OpArgs) -> torch.Tensor:
        return fn(a.tensor("x"), dim=a.value("axis", -1), keepdim=bool(a.value("keep_dims", False)))
    return op


register_mil_op("reduce_argmax")(_arg(torch.argmax))
register_mil_op("reduce_argmin")(_arg(torch.argmin))
