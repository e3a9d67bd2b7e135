"""Formats, found by name. Each module registers one Exporter; adding a format touches nothing else."""
from __future__ import annotations

import importlib

from exporters.base import ArtifactRecord, ExportError, Exporter, ExportRequest

_MODULES = {"onnx": "exporters.onnx_exporter", "tflite": "exporters.tflite_exporter",
            "coreml": "exporters.coreml_exporter"}


def available_formats() -> tuple[str, ...]:
    return tuple(_MODULES)


def get_exporter(fmt: str) -> Exporter:
    if fmt not in _MODULES:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[fmt]).EXPORTER


__all__ = ["ArtifactRecord", "ExportError", "Exporter", "ExportRequest", "available_formats", "get_exporter"]
