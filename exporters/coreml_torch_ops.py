"""Converters coremltools 9.0 lacks for what torch 2.13's exporter emits, added to coremltools' own torch-op
registry (one entry per op, only where coremltools has none, so a release that adds one takes over).

`aten.alias`: run_decompositions leaves it where a module returns a view of a tensor it keeps (attention
blocks in SwinIR, HAT, NAFNet and eight more spandrel architectures); it is a no-op, as coremltools already
treats alias_copy, clone and detach. Pools without a stride are rewritten in the exported graph instead
(explicit_pool_strides): coremltools' own max_pool2d converter is right once the stride is there; so are
clamps whose bounds are Python integers (float_clamp_bounds: `F.hardtanh(x, 0, 6)`, `x.clamp(0, 6)` reached
MIL's clip with int32 bounds beside a float x, which coremltools refuses).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram

_NOOPS = ("alias",)


def register_missing_torch_ops() -> list[str]:
    """The names added now (none on a second call)."""
    from coremltools.converters.mil.frontend.torch import ops as torch_ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY as registry

    added = [name for name in _NOOPS if name not in registry.name_to_func_mapping]
    for name in added:
        registry.set_func_by_name(torch_ops.noop, name)
    return added


def explicit_pool_strides(program: ExportedProgram) -> int:
    """aten.max_pool2d(x, kernel) with the stride left out (F.max_pool2d(x, 2): stride = kernel) reaches
    coremltools 9.0 as a node missing an input; write the stride out. Returns the number of nodes changed."""
    import torch

    aten = torch.ops.aten
    pools = {aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default,
             aten.max_pool2d_with_indices.default, aten.avg_pool1d.default, aten.avg_pool2d.default,
             aten.avg_pool3d.default}
    changed = 0
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target not in pools or node.kwargs.get("stride"):
            continue
        args = list(node.args) + [None] * max(0, 3 - len(node.args))
        if not args[2]:
            args[2] = list(args[1]) if isinstance(args[1], (list, tuple)) else [args[1]]
            node.args = tuple(args)
            changed += 1
    if changed:
        program.graph_module.recompile()
    return changed


def float_clamp_bounds(program: ExportedProgram) -> int:
    """hardtanh / clamp / clamp_min / clamp_max with integer bounds on a float tensor: the bounds as floats
    (what PyTorch computes with); hardtanh's bounds written out. Returns the number of nodes changed."""
    import torch

    aten = torch.ops.aten
    clamps = {aten.hardtanh.default, aten.hardtanh_.default, aten.clamp.default, aten.clamp_min.default,
              aten.clamp_max.default}
    changed = 0
    for node in program.graph.nodes:
        value = node.args[0].meta.get("val") if node.args and hasattr(node.args[0], "meta") else None
        if node.op != "call_function" or node.target not in clamps or value is None or not value.is_floating_point():
            continue
        if node.target in (aten.hardtanh.default, aten.hardtanh_.default) and len(node.args) < 3:
            # the exporter drops a bound equal to its default (-1, 1); coremltools' hardtanh wants both
            node.args = (*node.args, *(-1.0, 1.0)[len(node.args) - 1:])
            changed += 1
        ints = [a for a in (*node.args[1:], *node.kwargs.values()) if isinstance(a, int) and not isinstance(a, bool)]
        if ints:     # (0 == 0.0 in Python: the test is on the types)
            node.args = (node.args[0], *(_as_float(a) for a in node.args[1:]))
            node.kwargs = {k: _as_float(v) for k, v in node.kwargs.items()}
            changed += 1
    if changed:
        program.graph_module.recompile()
    return changed


def _as_float(value: object) -> object:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _remainder(x: torch.Tensor, y: torch.Tensor | float) -> torch.Tensor:
    import torch

    return x - torch.floor(x / y) * y


def coreml_decompositions() -> dict[Any, Any]:
    """Decompositions for run_decompositions, in place of coremltools' own lowering where that is wrong:
    `x % 1.0` became x - x (floor(x / 1) * 1 simplified to x, right only for integers), so the remainder
    reaches the converter as x - floor(x / y) * y."""
    import torch

    aten = torch.ops.aten
    return {aten.remainder.Scalar: _remainder, aten.remainder.Tensor: _remainder}
