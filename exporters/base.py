"""The interface every format implements, and the helpers its converters share."""
from __future__ import annotations

import re
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.quantize.pt2e import as_batches
from edgeport.runtimes.artifact import ArtifactRecord, TensorBinding

if TYPE_CHECKING:
    import torch
    from torch import nn

# A converter that runs in its own process gets this long unless --converter-timeout says otherwise:
# onnx2tf's full-integer route ran past 15 minutes on realesrgan-x4plus (64x64) with nothing written.
DEFAULT_CONVERTER_TIMEOUT_S = 900.0


class ExportError(Exception):
    """A converter refused the model; `op` names the operator it choked on when the message says."""
    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.op = op


@dataclass(frozen=True)
class ExportRequest:
    module: nn.Module                             # in eval mode
    example_inputs: tuple[torch.Tensor, ...]      # NCHW, contract dtype
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...]    # PyTorch's output shapes at the example input
    precision: str                                # the recipe as the format's tooling applies it: fp32, fp16, w8...
    work_dir: Path                                # empty folder that becomes the artifact
    stem: str
    dynamic_hw: bool = False
    sample_inputs: Sequence[Mapping[str, np.ndarray]] = ()  # real inputs, for converters that want data
    calibration: Sequence[Mapping[str, np.ndarray]] = ()    # photos fitted to the inputs, for int8 ranges
    options: Mapping[str, Any] = field(default_factory=dict)
    # per input / output: a runtimes.pixels.PixelEncoding where image I/O is compiled in, else None ((): none)
    input_pixels: tuple = ()
    output_pixels: tuple = ()
    # what the artifact says about itself (exporters/metadata.py): name, summary, author, license, version,
    # one line per input and output, and the contract as JSON
    about: Mapping[str, Any] = field(default_factory=dict)
    # units the recipe leaves at higher precision (mixed-precision search): names in the step's own terms
    # (quantize.steps.RecipeStep.keeps says which: ONNX nodes, MIL ops, TFLite tensors, torch modules)
    keep_float: tuple[str, ...] = ()

    @property
    def image_io(self) -> bool:
        return any(p is not None for p in (*self.input_pixels, *self.output_pixels))

    def pixels(self) -> tuple[tuple, tuple]:
        """(input encodings, output encodings), one entry per tensor."""
        return (tuple(self.input_pixels) or (None,) * len(self.input_names),
                tuple(self.output_pixels) or (None,) * len(self.output_names))

    @property
    def converter_timeout(self) -> float:
        return float(self.options.get("converter_timeout") or DEFAULT_CONVERTER_TIMEOUT_S)

    def calibration_batches(self) -> list[tuple[torch.Tensor, ...]]:
        """The calibration inputs as torch tensors in input order, for PT2E observers."""
        return as_batches(self.calibration, self.input_names)


class Exporter(ABC):
    """One format's converter. Subclasses import their converter inside export(), so listing formats stays
    instant."""
    @abstractmethod
    def export(self, request: ExportRequest) -> ArtifactRecord:
        """Write the artifact's files into request.work_dir and describe them."""


def nchw_bindings(names: Sequence[str], shapes: Sequence[tuple[int, ...]],
                  dynamic_hw: bool) -> tuple[TensorBinding, ...]:
    """Bindings for a format that keeps PyTorch's names and layout (Core ML, ExecuTorch)."""
    def shown(shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], shape[1], -1, -1) if dynamic_hw and len(shape) == 4 else tuple(shape)
    return tuple(TensorBinding(n, n, shown(s), "NCHW") for n, s in zip(names, shapes))


def detect_layout(shape: Sequence[int], nchw: Sequence[int]) -> str:
    """NCHW or NHWC, read from the artifact's own shape; refuses to guess when both fit or neither does."""
    shape, nchw = tuple(int(s) for s in shape), tuple(int(s) for s in nchw)
    if len(nchw) != 4:
        if shape == nchw:
            return "NCHW"
        raise ExportError(f"artifact tensor shape {shape} does not match PyTorch's {nchw}")
    nhwc = (nchw[0], nchw[2], nchw[3], nchw[1])
    if shape == nchw and shape != nhwc:
        return "NCHW"
    if shape == nhwc and shape != nchw:
        return "NHWC"
    if shape == nchw == nhwc:
        return "NCHW"  # every channel count equals H and W: the two layouts are one array
    raise ExportError(f"artifact tensor shape {shape} is neither NCHW {nchw} nor NHWC {nhwc}")


def run_converter(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float,
                  what: str) -> subprocess.CompletedProcess:
    """A converter in its own process, bounded in time: a timeout is this row's ExportError, and the
    process group is killed so nothing it started keeps running."""
    import os
    import signal

    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ExportError(f"{what} timed out after {timeout:.0f} s (raise it with --converter-timeout SECONDS)") \
            from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


_OP_PATTERNS = (
    re.compile(r"Unsupported fx node (\w+)"),
    re.compile(r"convert function for op '(\w+)' not implemented"),
    re.compile(r"Unsupported FX nodes: \{'call_function': \['([\w.:]+)'"),
    re.compile(r"'tfl\.(\w+)' op"),
    re.compile(r"\b(aten[.:]{1,2}[\w.]+)"),
    re.compile(r"[Oo]p(?:erator)? type \W?(\w+)\W? (?:is )?not (?:supported|implemented)"),
)


def failing_op(message: str) -> str | None:
    for pattern in _OP_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def _memory_error_in(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None or isinstance(seen, MemoryError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def short_message(exc: BaseException, limit: int = 300) -> str:
    """The converter's own words, first meaningful line, with its type; an out-of-memory error anywhere in the
    chain is named (torch.onnx wraps it in a TorchExportError that only asks for a bug report)."""
    exc = _memory_error_in(exc) or exc
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    for ln in lines:  # prefer a line that names the failure over a generic header
        if re.search(r"not (supported|implemented)|Unsupported|violate|error", ln, re.I):
            text = ln
            break
    return f"{type(exc).__name__}: {text}"[:limit]


def export_error(step: str, exc: BaseException) -> ExportError:
    """A converter's exception as this row's ExportError, naming the step and the op where it says."""
    if isinstance(exc, ExportError):
        return exc
    return ExportError(f"{step} failed: {short_message(exc)}", op=failing_op(str(exc)))
