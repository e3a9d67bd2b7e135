"""The export pipeline: spec -> module -> each format and precision -> parity -> manifest, atomically."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from edgeport import __version__
from edgeport.atomic import check_writable, commit_dir, ensure_writable, staging_dir, write_json
from edgeport.progress import Progress

MANIFEST_SCHEMA = "edgeport.manifest/1"
SUMMARY_SCHEMA = "edgeport.export-summary/1"


@dataclass(frozen=True)
class ExportPlan:
    model: str
    formats: tuple[str, ...]
    out_root: Path
    precisions: tuple[str, ...] | None = None   # None: each format's default precisions
    weights: Path | None = None
    seed: int = 0
    parity_seed: int = 0
    input_hw: tuple[int, int] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    dynamic_hw: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, ...], ...] = ()   # a custom model's inputs (--input)
    spec: Any = None                                  # a ready ModelSpec (Python API); overrides `model`


@dataclass
class ExportRow:
    """One format and precision. status: pass, parity-fail, parity-error, export-failed or unsupported."""

    model: str
    format: str
    precision: str
    status: str
    route: str = ""
    bytes: int = 0
    worst_psnr_db: float | None = None
    engine: str = ""
    export_seconds: float = 0.0
    path: str = ""
    message: str = ""
    op: str | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("pass", "unsupported")

    def to_dict(self) -> dict[str, Any]:
        import math

        psnr = self.worst_psnr_db
        return {"model": self.model, "format": self.format, "precision": self.precision, "status": self.status,
                "route": self.route, "bytes": self.bytes,
                "worst_psnr_db": None if psnr is None or math.isinf(psnr) else round(psnr, 2),
                "bit_exact": psnr is not None and math.isinf(psnr) and psnr > 0,
                "engine": self.engine, "export_seconds": round(self.export_seconds, 2), "path": self.path,
                "message": self.message, "op": self.op}


@dataclass
class ExportSummary:
    model: str
    source: str
    params: int
    macs: int
    input_shapes: list[list[int]]
    rows: list[ExportRow]
    seconds: float

    @property
    def exit_code(self) -> int:
        return 1 if any(r.failed for r in self.rows) else 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SUMMARY_SCHEMA, "model": self.model, "source": self.source, "params": self.params,
                "macs": self.macs, "input_shapes": self.input_shapes, "seconds": round(self.seconds, 1),
                "ok": self.exit_code == 0, "rows": [r.to_dict() for r in self.rows]}


def _environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "edgeport": __version__}


def run_export(plan: ExportPlan, progress: Progress | None = None) -> ExportSummary:
    """Raises ModelError / ExportError / OutputError for bad input before anything is written."""
    import torch

    from exporters import ExportError, ExportRequest, get_exporter
    from exporters.base import failing_op, short_message
    from models import ModelError, get_spec
    from models.profile import profile_model
    from models.source import instantiate, resolve_inputs, source_for
    from parity_tests.gate import evaluate, torch_references

    started = time.perf_counter()
    exporters = {fmt: get_exporter(fmt) for fmt in plan.formats}          # unknown format: fails here
    spec = plan.spec or get_spec(plan.model, list(plan.input_shapes))
    spec.check_config(plan.config)
    contracts = resolve_inputs(spec, plan.input_hw, plan.config)
    check_writable(plan.out_root)
    jobs = [(fmt, prec) for fmt, exp in exporters.items() for prec in (plan.precisions or exp.default_precisions)]
    progress = progress or Progress(enabled=False)
    progress.total = 2 + len(jobs)

    with progress.step(f"{spec.name}: build model"):
        source = source_for(spec, plan.config, plan.weights, plan.seed)
        module = instantiate(spec, source, contracts)
    input_names = tuple(c.name for c in contracts)
    output_names = tuple(c.name for c in spec.outputs)
    with progress.step(f"{spec.name}: PyTorch reference"):
        samples = spec.make_inputs(contracts, plan.parity_seed)
        try:
            references = torch_references(module, samples, input_names, output_names)
        except Exception as exc:
            shapes = ", ".join("x".join(map(str, c.shape)) for c in contracts)
            raise ModelError(f"{spec.name} rejects input {shapes}: {short_message(exc)}") from None
        profile = profile_model(lambda: spec.build(**plan.config), [c.shape for c in contracts])
    ensure_writable(plan.out_root)          # only now: bad input above leaves nothing behind
    output_shapes = tuple(tuple(references[0][n].shape) for n in output_names)
    example = tuple(torch.from_numpy(samples[0].arrays[n]) for n in input_names)
    model_dir = plan.out_root / spec.name
    rows: list[ExportRow] = []

    for fmt, precision in jobs:
        exporter = exporters[fmt]
        row = ExportRow(spec.name, fmt, precision, "unsupported")
        rows.append(row)
        if precision not in exporter.precisions:
            row.message = f"{precision} is not supported for {fmt} (supported: {', '.join(exporter.precisions)})"
            continue
        final = model_dir / f"{fmt}-{precision}"
        with progress.step(f"{spec.name}: {fmt} {precision}"), staging_dir(model_dir, final.name) as work:
            request = ExportRequest(module=module, example_inputs=example, input_names=input_names,
                                    output_names=output_names, output_shapes=output_shapes, precision=precision,
                                    work_dir=work, stem=spec.name, dynamic_hw=plan.dynamic_hw,
                                    sample_inputs=[s.arrays for s in samples], options=plan.options)
            t0 = time.perf_counter()
            try:
                record = exporter.export(request)
            except ExportError as exc:
                row.status, row.message, row.op = "export-failed", str(exc), exc.op
                continue
            except Exception as exc:  # converters raise anything; one format's failure never stops the rest
                row.status, row.message, row.op = "export-failed", short_message(exc), failing_op(str(exc))
                continue
            finally:
                row.export_seconds = time.perf_counter() - t0
            report = evaluate(record, work, samples, references, spec.gate_for(precision), plan.parity_seed,
                              spec.task_metric)
            manifest = {
                "schema": MANIFEST_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "source": source.to_dict(),
                "model": {"name": spec.name, "summary": spec.summary, "task": spec.task,
                          "paper": spec.metadata.paper, "upstream": spec.metadata.upstream,
                          **profile.to_dict()},
                "contract": {"inputs": [c.to_dict() for c in contracts],
                             "outputs": [{**c.to_dict(), "shape": list(s)} for c, s in zip(spec.outputs, output_shapes)]},
                "artifact": record.to_dict(), "export_seconds": round(row.export_seconds, 2),
                "parity": report.to_dict(), "environment": _environment(),
            }
            write_json(work / "manifest.json", manifest)
            commit_dir(work, final)
        row.status = "pass" if report.passed else f"parity-{report.status}"
        row.route, row.bytes, row.engine = record.route, record.total_bytes, report.engine
        row.worst_psnr_db, row.path = report.worst_psnr_db, str(final)
        row.message = report.message or "; ".join(record.warnings)

    summary = ExportSummary(spec.name, source.description, profile.params, profile.macs,
                            [list(c.shape) for c in contracts], rows, time.perf_counter() - started)
    write_json(model_dir / "export.json", summary.to_dict())
    return summary
