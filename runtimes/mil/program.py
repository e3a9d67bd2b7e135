"""Evaluate a saved .mlpackage's MIL program op by op in PyTorch: Core ML parity on Linux.

coremltools reads the program and its weights back on any platform, but MLModel.predict runs only on macOS.
Each op is computed in float32; where the program stores a value as fp16, the result is rounded to fp16,
as the device would hold it. An op the evaluator does not know raises, naming it: nothing is skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from edgeport.runtimes.base import captured_output
from edgeport.runtimes.mil.registry import MIL_OPS, MilEvalError, OpArgs, round_to_dtype

if TYPE_CHECKING:
    from coremltools.converters.mil.mil import Operation, Program


def load_mil_program(package: Path) -> Program:
    """The PyMIL Program of a saved .mlpackage (the 'main' function)."""
    with captured_output():
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    if not spec.HasField("mlProgram"):
        raise MilEvalError(f"{package} is not an ML program (neural-network models are not evaluated)")
    weights = package / "Data" / "com.apple.CoreML" / "weights"
    return load(spec, spec.specificationVersion, file_weights_dir=str(weights))


# coremltools' op definition module (mil/ops/defs/iOS*/<kind>.py) -> the evaluator's module for that kind
_HOMES = {"activation": "activations.py", "normalization": "activations.py", "elementwise_binary": "ops.py",
          "elementwise_unary": "ops.py", "reduction": "reductions.py", "image_resizing": "resize.py",
          "scatter_gather": "indexing.py", "tensor_operation": "indexing.py", "tensor_transformation": "indexing.py",
          "constexpr_ops": "compressed.py", "quantization_ops": "compressed.py"}


def home_of(op: Operation) -> str:
    """The file a missing op belongs in, from the coremltools module that defines it."""
    kind = type(op).__module__.rsplit(".", 1)[-1]
    return f"runtimes/mil/{_HOMES.get(kind, 'ops.py')}"


class MilEvaluator:
    def __init__(self, program: Program) -> None:
        self.function = program.functions["main"]
        for op in self.function.operations:
            if op.op_type.startswith("random_"):
                raise MilEvalError(f"MIL op '{op.op_type}' (at {op.name}) draws random numbers at inference: no "
                                   "parity verdict can compare it with PyTorch's own draw; export without the noise")
            if op.op_type != "const" and op.op_type not in MIL_OPS:
                raise MilEvalError(f"MIL op '{op.op_type}' (at {op.name}) is not implemented in edgeport's "
                                   f"MIL evaluator; add it to {home_of(op)} (one function, @register_mil_op)")
            if op.blocks:
                raise MilEvalError(f"MIL op '{op.op_type}' has nested blocks; control flow is not evaluated")

    @property
    def op_types(self) -> set[str]:
        return {op.op_type for op in self.function.operations}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = self.trace(inputs)
        return {var.name: env[var.name].float().numpy() for var in self.function.outputs}

    def trace(self, inputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Every value the program computes, by MIL variable name (activation ranges, error localisation)."""
        env: dict[str, torch.Tensor] = {}
        for name, var in self.function.inputs.items():
            if name not in inputs:
                raise MilEvalError(f"program input {name!r} was not given")
            env[name] = round_to_dtype(torch.from_numpy(np.asarray(inputs[name], dtype=np.float32)), var.dtype)
        with torch.no_grad():
            for op in self.function.operations:
                if op.op_type == "const":
                    continue
                result = MIL_OPS[op.op_type](OpArgs(op, env))
                results = result if isinstance(result, (tuple, list)) else (result,)
                for var, value in zip(op.outputs, results):
                    env[var.name] = round_to_dtype(value, var.dtype)
        return env
