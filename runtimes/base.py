"""What every runtime shares: the Runtime protocol, layout conversion at the artifact boundary, and a way to
silence a library's C++ logging without losing it."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING, Iterator, Mapping, NamedTuple, Protocol

import numpy as np

from edgeport.runtimes.artifact import TensorBinding

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

PARITY_THREADS = 2


class RuntimeUnavailable(Exception):
    """The runtime cannot run here (say, Core ML prediction off macOS) or lacks an op; never a pass."""


class Runtime(Protocol):
    engine: str

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class TracedTensor(NamedTuple):
    """One intermediate tensor of an artifact, with where it came from: error localisation compares values,
    the mixed-precision search attributes error to the `unit` (the name the format's tooling selects by:
    an ONNX node, a MIL op, a TFLite output tensor) from the error already in its `inputs`."""
    op: str                      # producing op type
    value: np.ndarray            # float32, in the artifact's own layout
    unit: str = ""
    inputs: tuple[str, ...] = ()


# name -> TracedTensor, in graph order
Tensors = dict[str, TracedTensor]


def to_artifact_layout(array: np.ndarray, binding: TensorBinding, dtype: DTypeLike | None = None) -> np.ndarray:
    """Contract arrays are NCHW; an NHWC artifact gets them transposed, as an app would feed it. An image
    binding gets 8-bit pixels whatever dtype is asked for: its artifact converts them itself."""
    if binding.pixels is not None:
        array, dtype = binding.pixels.to_pixels(array), np.uint8
    array = array.transpose(0, 2, 3, 1) if binding.layout == "NHWC" else array
    return np.ascontiguousarray(array.astype(dtype or binding.dtype, copy=False))


def from_artifact_layout(array: np.ndarray, binding: TensorBinding) -> np.ndarray:
    """Back to the contract: NCHW, and contract values for an image binding's pixels."""
    array = np.asarray(array)
    array = array.transpose(0, 3, 1, 2) if binding.layout == "NHWC" else array
    return binding.pixels.from_pixels(array) if binding.pixels is not None else array


def artifact_feed(bindings: tuple[TensorBinding, ...], inputs: Mapping[str, np.ndarray],
                  dtype: DTypeLike | None = None) -> dict[str, np.ndarray]:
    """Contract-named NCHW inputs, keyed and laid out as the artifact names and lays them out."""
    return {b.artifact_name: to_artifact_layout(np.asarray(inputs[b.name]), b, dtype) for b in bindings}


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Silence a converter's or runtime's progress bars and logs, kept in the yielded list: at the fd level
    (C++ output) and at Python's sys.stdout/sys.stderr, which are not fd 1 and 2 in a notebook, an app
    embedding edgeport or a test capturing output (torch.onnx's progress lines once ended up in --json)."""
    import io

    sink: list[str] = []
    python_out, python_err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(tmp.fileno(), fd)
            with contextlib.redirect_stdout(python_out), contextlib.redirect_stderr(python_err):
                yield sink
        finally:
            for fd, keep in zip((1, 2), saved):
                os.dup2(keep, fd)
                os.close(keep)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace") + python_out.getvalue() + python_err.getvalue())
