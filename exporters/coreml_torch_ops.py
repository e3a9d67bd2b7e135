"""Converters coremltools 9.0 lacks for what torch 2.13's exporter emits, added to coremltools' own torch-op
registry (one entry per op, only where coremltools has none, so a release that adds one takes over).

`aten.alias`: run_decompositions leaves it where a module returns a view of a tensor it keeps (attention
blocks in SwinIR, HAT, NAFNet and eight more spandrel architectures); it is a no-op, as coremltools already
treats alias_copy, clone and detach.
"""
from __future__ import annotations

_NOOPS = ("alias",)


def register_missing_torch_ops() -> list[str]:
    """The names added now (none on a second call)."""
    from coremltools.converters.mil.frontend.torch import ops as torch_ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY as registry

    added = [name for name in _NOOPS if name not in registry.name_to_func_mapping]
    for name in added:
        registry.set_func_by_name(torch_ops.noop, name)
    return added
