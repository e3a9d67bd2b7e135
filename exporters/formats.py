"""Formats, found by name: one Format object per format module, one registry.

Adding a format is one module that defines FORMAT, plus its line in BUILTIN_FORMATS (or its module name in
$EDGEPORT_FORMATS, which also reaches the benchmark's worker processes). Export, check, size and bench read
everything format-specific from the Format: its exporter, how to run an artifact, how to read intermediate
tensors for error localisation, and which recipes its tooling applies.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgeport.exporters.base import Exporter, ExportError
from edgeport.quantize.steps import precisions_for
from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import Runtime, Tensors

BUILTIN_FORMATS = (
    "edgeport.exporters.onnx_exporter",
    "edgeport.exporters.tflite_exporter",
    "edgeport.exporters.coreml_exporter",
    "edgeport.exporters.executorch_exporter",
)
DEFAULT_FORMATS = ("onnx", "tflite", "coreml", "executorch")   # what an export goes to without --to
PLUGIN_ENV = "EDGEPORT_FORMATS"   # comma-separated module names defining FORMAT

RuntimeFactory = Callable[[ArtifactRecord, Path, int], Runtime]
TensorReader = Callable[[ArtifactRecord, Path, Mapping[str, np.ndarray]], Tensors]


def _always_timeable() -> str:
    return ""


@dataclass(frozen=True)
class Format:
    name: str
    label: str                               # how people write it: "Core ML"
    exporter: Exporter
    open_runtime: RuntimeFactory             # (record, artifact folder, threads) -> a runtime with .run/.engine
    recipe_module: str                       # registers this format's (format, recipe) steps on import
    channel_axis: int = 1                    # of intermediate tensors (TFLite computes NHWC: -1)
    read_tensors: TensorReader | None = None     # every intermediate tensor, for error localisation
    tensors_engine: str = ""
    default_recipes: tuple[str, ...] = ("fp32",)
    # '' when this machine can time the format's artifacts, else why not (Core ML needs macOS)
    latency_unavailable: Callable[[], str] = _always_timeable
    # what the mixed-precision search (+auto) keeps at higher precision when a step keeps="artifact"
    unit_kind: str = "artifact units"
    colour: tuple[int, int, int] = (120, 60, 160)   # its bars and points in every chart
    converter: str = ""                      # what a crashed or stuck row names: "coremltools"
    # imported by a row process before its rows: TensorFlow (under coremltools and litert-torch) replaces the
    # SIGSEGV handler on import, so the crash report's stack handler is installed again after these
    preload: tuple[str, ...] = ()
    # a row of this format showing no progress this long is stopped (--converter-timeout overrides)
    row_timeout_s: float = 900.0

    @property
    def recipes(self) -> tuple[str, ...]:
        """The export precisions its tooling applies (fp32 always)."""
        importlib.import_module(self.recipe_module)
        return precisions_for(self.name)


def _plugin_modules() -> tuple[str, ...]:
    return tuple(m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip())


@lru_cache(maxsize=None)
def _registry(modules: tuple[str, ...]) -> dict[str, Format]:
    found: dict[str, Format] = {}
    for name in modules:
        fmt = getattr(importlib.import_module(name), "FORMAT", None)
        if not isinstance(fmt, Format):
            raise RuntimeError(f"format module {name} defines no FORMAT = Format(...)")
        if fmt.name in found:
            raise RuntimeError(f"format {fmt.name!r} is registered twice ({name})")
        found[fmt.name] = fmt
    return found


def all_formats() -> dict[str, Format]:
    return _registry(BUILTIN_FORMATS + _plugin_modules())


def get_format(name: str) -> Format:
    formats = all_formats()
    if name not in formats:
        raise ExportError(f"unknown format {name!r}; formats: {', '.join(formats)}")
    return formats[name]


def open_runtime(record: ArtifactRecord, artifact_dir: Path, threads: int) -> Runtime:
    return get_format(record.format).open_runtime(record, artifact_dir, threads)
