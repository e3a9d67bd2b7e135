"""The interface every format implements, and the record an export leaves behind."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np



def sha256_file(path: Path) -> str:
    # Not models.checkpoint's: importing models loads torch, which a runtime-only process (the benchmark
    # worker timing an ONNX or TFLite artifact's cold start) must not pay for.
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class ExportError(Exception):
    """A converter refused the model; `op` names the operator it choked on when the message says."""

    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.op = op


@dataclass(frozen=True)
class ExportRequest:
    module: Any                                   # torch.nn.Module in eval mode
    example_inputs: tuple[Any, ...]               # torch tensors, NCHW, contract dtype
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...]    # PyTorch's output shapes at the example input
    precision: str                                # the recipe as the exporter applies it: fp32, fp16, w8, ...
    work_dir: Path                                # empty folder that becomes the artifact
    stem: str
    dynamic_hw: bool = False
    sample_inputs: Sequence[Mapping[str, np.ndarray]] = ()  # real inputs, for converters that want data
    calibration: Sequence[Mapping[str, np.ndarray]] = ()    # photos fitted to the inputs, for int8 ranges
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorBinding:
    """How a contract tensor appears inside the artifact: its own name, shape and layout."""

    name: str
    artifact_name: str
    shape: tuple[int, ...]
    layout: str  # "NCHW" or "NHWC"
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "artifact_name": self.artifact_name, "shape": list(self.shape),
                "layout": self.layout, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TensorBinding":
        return cls(d["name"], d["artifact_name"], tuple(d["shape"]), d["layout"], d.get("dtype", "float32"))


@dataclass(frozen=True)
class FileRecord:
    path: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FileRecord":
        return cls(d["path"], int(d["bytes"]), d["sha256"])


@dataclass(frozen=True)
class ArtifactRecord:
    format: str
    precision: str
    route: str
    main_file: str
    files: tuple[FileRecord, ...]
    inputs: tuple[TensorBinding, ...]
    outputs: tuple[TensorBinding, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "precision": self.precision, "route": self.route,
            "main_file": self.main_file, "total_bytes": self.total_bytes,
            "files": [f.to_dict() for f in self.files],
            "inputs": [b.to_dict() for b in self.inputs], "outputs": [b.to_dict() for b in self.outputs],
            "details": dict(self.details), "versions": dict(self.versions), "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ArtifactRecord":
        return cls(
            format=d["format"], precision=d["precision"], route=d["route"], main_file=d["main_file"],
            files=tuple(FileRecord.from_dict(f) for f in d["files"]),
            inputs=tuple(TensorBinding.from_dict(b) for b in d["inputs"]),
            outputs=tuple(TensorBinding.from_dict(b) for b in d["outputs"]),
            details=dict(d.get("details") or {}), versions=dict(d.get("versions") or {}),
            warnings=tuple(d.get("warnings") or ()),
        )


class Exporter(ABC):
    """One format. Subclasses import their converter inside export(), so listing formats stays instant."""

    format: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    default_precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    @abstractmethod
    def export(self, request: ExportRequest) -> ArtifactRecord:
        """Write the artifact's files into request.work_dir and describe them."""


def file_records(root: Path) -> tuple[FileRecord, ...]:
    """Every file under root (an .mlpackage is a folder), sorted, with size and digest."""
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    return tuple(FileRecord(str(p.relative_to(root)), p.stat().st_size, sha256_file(p)) for p in paths)


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


def short_message(exc: BaseException, limit: int = 300) -> str:
    """The converter's own words, first meaningful line, with its type."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    for ln in lines:  # prefer a line that names the failure over a generic header
        if re.search(r"not (supported|implemented)|Unsupported|violate|error", ln, re.I):
            text = ln
            break
    return f"{type(exc).__name__}: {text}"[:limit]


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Silence a converter's progress bars and logs (fd level, so C++ output too); the text is kept."""
    sink: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(tmp.fileno(), fd)
            yield sink
        finally:
            for fd, keep in zip((1, 2), saved):
                os.dup2(keep, fd)
                os.close(keep)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))
