"""The MIL op registry: one function per op name, looked up by the program walker (program.py).

Apart from the ops, as coremltools keeps its torch_op_registry apart from its op definitions: the op modules
import this one, and the package (runtimes/mil/__init__.py) imports the op modules so every op is registered.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from coremltools.converters.mil.mil import Operation, Var

MilOp = Callable[["OpArgs"], Any]
MIL_OPS: dict[str, MilOp] = {}


class MilEvalError(Exception):
    """The evaluator met something it does not implement; the message names it."""


def register_mil_op(*names: str) -> Callable[[MilOp], MilOp]:
    def wrap(fn: MilOp) -> MilOp:
        for name in names:
            if name in MIL_OPS:
                raise RuntimeError(f"MIL op {name!r} is registered twice ({MIL_OPS[name].__name__} and {fn.__name__})")
            MIL_OPS[name] = fn
        return fn
    return wrap


def _dtype_name(dtype: type | None) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(dtype) if dtype is not None else "fp32"


def round_to_dtype(value: torch.Tensor, dtype: type | None) -> torch.Tensor:
    """Hold a value as the program stores it: fp16 values rounded, floats otherwise float32."""
    name = _dtype_name(dtype)
    if name == "fp16":
        return value.to(torch.float16).to(torch.float32)
    if name in ("fp32", "fp64"):
        return value.to(torch.float32)
    if name == "bool":
        return value.to(torch.bool)
    if name.startswith(("int", "uint")):
        return value.to(torch.int64)
    return value


def _as_tensor(val: Any) -> torch.Tensor:
    arr = np.asarray(val)
    if arr.dtype.kind == "f":
        return torch.from_numpy(arr.astype(np.float32))
    if arr.dtype.kind in "iu":
        return torch.from_numpy(arr.astype(np.int64))
    if arr.dtype.kind == "b":
        return torch.from_numpy(arr)
    raise MilEvalError(f"cannot use a constant of dtype {arr.dtype} as a tensor")


class OpArgs:
    """One op's inputs: tensors from the environment, constants from the program."""

    def __init__(self, op: Operation, env: dict[str, torch.Tensor]) -> None:
        self.op = op
        self.env = env

    def has(self, key: str) -> bool:
        return self.op.inputs.get(key) is not None

    def _resolve(self, var: Var) -> torch.Tensor:
        if var.name in self.env:
            return self.env[var.name]
        if var.val is not None:
            return _as_tensor(var.val)
        raise MilEvalError(f"{self.op.op_type} {self.op.name}: input {var.name} has no value")

    def tensor(self, key: str) -> torch.Tensor:
        return self._resolve(self.op.inputs[key])

    def tensors(self, key: str) -> list[torch.Tensor]:
        return [self._resolve(v) for v in self.op.inputs[key]]

    def value(self, key: str, default: Any = None) -> Any:
        var = self.op.inputs.get(key)
        if var is None:
            return default
        if var.val is None:
            raise MilEvalError(f"{self.op.op_type} {self.op.name}: expected a constant {key}")
        val = var.val
        return val.tolist() if isinstance(val, np.ndarray) else (val.item() if hasattr(val, "item") else val)
