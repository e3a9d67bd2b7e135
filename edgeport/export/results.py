"""What an export run returns: one typed outcome per (format, recipe), and the summary rows derived from them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.parity_tests.manifest import Manifest
from edgeport.runtimes.json_numbers import db_for_json

SUMMARY_SCHEMA = "edgeport.export-summary/2"


@dataclass(frozen=True)
class ArtifactOutcome:
    """status: pass, parity-fail, parity-error, export-failed, recipe-failed, unsupported, or (a row's process
    died or was stopped: edgeport/export/isolation.py) crashed or timed-out."""

    format: str
    recipe: str
    status: str
    message: str = ""
    op: str | None = None
    export_seconds: float = 0.0
    manifest: Manifest | None = None
    path: Path | None = None
    outputs: list = field(default_factory=list, repr=False)   # the runtime's outputs on the parity samples


@dataclass(frozen=True)
class ModelHeader:
    """What the summary says of the model, taken where it was built (the row process, or this one)."""
    model: str
    source: str
    params: int
    macs: int
    input_shapes: tuple[tuple[int, ...], ...]
    model_dir: Path
    jobs: tuple[tuple[str, str], ...]      # (format, recipe) of each row, in export order


@dataclass(frozen=True)
class ExportRow:
    """One line of the summary table, derived from an ArtifactOutcome."""

    model: str
    format: str
    recipe: str
    status: str
    route: str = ""
    bytes: int = 0
    worst_psnr_db: float | None = None
    engine: str = ""
    export_seconds: float = 0.0
    path: str = ""
    message: str = ""
    op: str | None = None
    vs_fp32_artifact_db: float | None = None   # against the fp32 artifact of the same format, same runtime
    digest: str = ""
    photo_db: float | None = None     # worst over the in-distribution samples
    noise_db: float | None = None     # the uniform-noise sample
    gated_on: str = "all"             # ParityGate.samples: "all", or "photos" for calibrated / lossy recipes
    photo_max_8bit: int | None = None  # largest 8-bit difference of a picture output over the photos
    finite: bool = True               # False: the runtime gave NaN or Inf on some sample (always a failed row)

    @classmethod
    def of(cls, model: str, outcome: ArtifactOutcome) -> "ExportRow":
        m = outcome.manifest
        if m is None:
            return cls(model, outcome.format, outcome.recipe, outcome.status, message=outcome.message, op=outcome.op,
                       export_seconds=outcome.export_seconds)
        p = m.parity
        return cls(model, outcome.format, outcome.recipe, outcome.status, m.artifact.route, m.artifact.total_bytes,
                   p.worst_psnr_db, p.engine, outcome.export_seconds, str(outcome.path),
                   outcome.message, outcome.op, m.recipe.details.get("vs_fp32_artifact_db"), m.artifact.digest,
                   p.photo_db, p.noise_db, p.gate.samples, p.photo_max_8bit, p.finite)

    @property
    def failed(self) -> bool:
        return self.status not in ("pass", "unsupported")

    def to_dict(self) -> dict[str, Any]:
        psnr = self.worst_psnr_db
        return {"model": self.model, "format": self.format, "recipe": self.recipe, "status": self.status,
                "route": self.route, "bytes": self.bytes, "worst_psnr_db": db_for_json(psnr),
                "bit_exact": psnr is not None and math.isinf(psnr) and psnr > 0,
                "engine": self.engine, "export_seconds": round(self.export_seconds, 2), "path": self.path,
                "message": self.message, "op": self.op, "vs_fp32_artifact_db": db_for_json(self.vs_fp32_artifact_db),
                "digest": self.digest, "photo_psnr_db": db_for_json(self.photo_db),
                "noise_psnr_db": db_for_json(self.noise_db), "gated_on": self.gated_on,
                "photo_max_8bit_diff": self.photo_max_8bit, "finite": self.finite}


@dataclass(frozen=True)
class ExportSummary:
    model: str
    source: str
    params: int
    macs: int
    input_shapes: tuple[tuple[int, ...], ...]
    rows: tuple[ExportRow, ...]
    seconds: float
    isolation: str = "process"     # each row in a child process, or "in-process: <why>"
    unwritten: str = ""            # why export.json and report.md could not be written (a full disk)

    @property
    def exit_code(self) -> int:
        return 1 if self.unwritten or any(r.failed for r in self.rows) else 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SUMMARY_SCHEMA, "model": self.model, "source": self.source, "params": self.params,
                "macs": self.macs, "input_shapes": [list(s) for s in self.input_shapes],
                "seconds": round(self.seconds, 1), "ok": self.exit_code == 0, "isolation": self.isolation,
                "unwritten": self.unwritten or None, "rows": [r.to_dict() for r in self.rows]}
