"""What an export leaves behind, as exporters write it and runtimes, parity and benchmarks read it.

Plain data with one reader each (from_dict), importable without torch or any converter.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgeport.runtimes.pixels import PixelEncoding


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class TensorBinding:
    """How a contract tensor appears inside the artifact: its own name, shape, layout and type. `pixels` set:
    the artifact takes or gives 8-bit pixels (uint8, or a Core ML image) and converts to the contract inside."""

    name: str
    artifact_name: str
    shape: tuple[int, ...]
    layout: str  # "NCHW" or "NHWC"
    dtype: str = "float32"
    pixels: PixelEncoding | None = None

    @property
    def io(self) -> str:
        return "image" if self.pixels is not None else "tensor"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "artifact_name": self.artifact_name, "shape": list(self.shape),
                "layout": self.layout, "dtype": self.dtype, "io": self.io,
                "pixels": self.pixels.to_dict() if self.pixels else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TensorBinding":
        return cls(d["name"], d["artifact_name"], tuple(d["shape"]), d["layout"], d.get("dtype", "float32"),
                   PixelEncoding.from_dict(d.get("pixels")))


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


def file_records(root: Path) -> tuple[FileRecord, ...]:
    """Every file under root (an .mlpackage is a folder), sorted, with size and digest."""
    paths = sorted(p for p in Path(root).rglob("*") if p.is_file())
    return tuple(FileRecord(p.relative_to(root).as_posix(), p.stat().st_size, sha256_file(p)) for p in paths)


def content_digest(files: tuple[FileRecord, ...]) -> str:
    """One digest for the whole artifact: its files' paths and contents, independent of timestamps and of
    the folder it lies in. Exporters make their files reproducible, so identical exports give equal digests."""
    lines = "".join(f"{f.path}\0{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class ArtifactRecord:
    """export_precision is what the format's tooling was asked for (fp32, fp16, w8, w8a8, palettize4, sparse);
    the recipe (prune50+w8a8, say) is the manifest's recipe.name."""

    format: str
    export_precision: str
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

    @property
    def digest(self) -> str:
        return content_digest(self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "export_precision": self.export_precision, "route": self.route,
            "main_file": self.main_file, "total_bytes": self.total_bytes, "digest": self.digest,
            "files": [f.to_dict() for f in self.files],
            "inputs": [b.to_dict() for b in self.inputs], "outputs": [b.to_dict() for b in self.outputs],
            "details": dict(self.details), "versions": dict(self.versions), "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ArtifactRecord":
        """Reads edgeport.manifest/2 and /1 (where the export precision was called "precision")."""
        return cls(
            format=d["format"], export_precision=d.get("export_precision", d.get("precision", "fp32")),
            route=d["route"], main_file=d["main_file"],
            files=tuple(FileRecord.from_dict(f) for f in d["files"]),
            inputs=tuple(TensorBinding.from_dict(b) for b in d["inputs"]),
            outputs=tuple(TensorBinding.from_dict(b) for b in d["outputs"]),
            details=dict(d.get("details") or {}), versions=dict(d.get("versions") or {}),
            warnings=tuple(d.get("warnings") or ()),
        )
