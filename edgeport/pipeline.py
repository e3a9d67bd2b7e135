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
    recipes: tuple[str, ...] | None = None      # names (quantize/recipes.py); None: each format's defaults
    weights: Path | None = None
    seed: int = 0
    parity_seed: int = 0
    input_hw: tuple[int, int] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    dynamic_hw: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, ...], ...] = ()   # a custom model's inputs (--input)
    spec: Any = None                                  # a ready ModelSpec (Python API); overrides `model`
    calib_dir: Path | None = None                     # calibration photos; None: the bundled ones


@dataclass
class ExportRow:
    """One format and recipe (held in `precision`, the manifest's name for it). status: pass, parity-fail,
    parity-error, export-failed, recipe-failed or unsupported."""

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
    vs_fp32_artifact_db: float | None = None   # against the fp32 artifact of the same format, same runtime

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
                "message": self.message, "op": self.op,
                "vs_fp32_artifact_db": _finite_or_none(self.vs_fp32_artifact_db)}


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


def _finite_or_none(value: float | None) -> float | None:
    import math

    return None if value is None or not math.isfinite(value) else round(value, 2)


def _environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "edgeport": __version__}


@dataclass
class _Variant:
    """The module one recipe exports, with its PyTorch outputs on the parity inputs."""

    module: Any
    references: list
    profile: Any
    details: dict
    warning: str = ""


@dataclass
class _Fp32Artifact:
    record: Any
    path: Path
    outputs: list


def _job_order(formats: tuple[str, ...], exporters: Mapping[str, Any], recipes: tuple | None) -> list[tuple[str, Any]]:
    """Each format's recipes, fp32 first so that the others can be compared with it."""
    from quantize.recipes import parse_recipe

    jobs = []
    for fmt in formats:
        chosen = recipes or tuple(parse_recipe(p) for p in exporters[fmt].default_precisions)
        jobs += [(fmt, r) for r in sorted(chosen, key=lambda r: r.name != "fp32")]
    return jobs


def run_export(plan: ExportPlan, progress: Progress | None = None) -> ExportSummary:
    """Raises ModelError / ExportError / OutputError / RecipeError for bad input before anything is written."""
    import copy

    import torch

    from exporters import ExportError, ExportRequest, get_exporter
    from exporters.base import failing_op, short_message
    from models import ModelError, get_spec
    from models.profile import profile_model
    from models.source import instantiate, resolve_inputs, source_for
    from parity_tests.gate import evaluate, torch_references, versus_outputs
    from parity_tests.localize import collapse, localize
    from quantize.calibration import calibration_set
    from quantize.recipes import RecipeError, parse_recipes
    from quantize.variants import module_for_recipe

    started = time.perf_counter()
    exporters = {fmt: get_exporter(fmt) for fmt in plan.formats}          # unknown format: fails here
    recipes = parse_recipes(",".join(plan.recipes)) if plan.recipes else None
    spec = plan.spec or get_spec(plan.model, list(plan.input_shapes))
    spec.check_config(plan.config)
    contracts = resolve_inputs(spec, plan.input_hw, plan.config)
    check_writable(plan.out_root)
    jobs = _job_order(plan.formats, exporters, recipes)
    progress = progress or Progress(enabled=False)
    progress.total = 2 + len(jobs)

    with progress.step(f"{spec.name}: build model"):
        source = source_for(spec, plan.config, plan.weights, plan.seed)
        module = instantiate(spec, source, contracts)
    input_names = tuple(c.name for c in contracts)
    output_names = tuple(c.name for c in spec.outputs)
    shapes = [c.shape for c in contracts]
    with progress.step(f"{spec.name}: PyTorch reference"):
        samples = spec.make_inputs(contracts, plan.parity_seed)
        try:
            references = torch_references(module, samples, input_names, output_names)
        except Exception as exc:
            shapes_text = ", ".join("x".join(map(str, s)) for s in shapes)
            raise ModelError(f"{spec.name} rejects input {shapes_text}: {short_message(exc)}") from None
        profile = profile_model(lambda: spec.build(**plan.config), shapes)
    calibration = (calibration_set(spec, contracts, plan.calib_dir, plan.parity_seed)
                   if any(r.needs_calibration for _, r in jobs) else None)   # a bad --calib fails here
    ensure_writable(plan.out_root)          # only now: bad input above leaves nothing behind
    output_shapes = tuple(tuple(references[0][n].shape) for n in output_names)
    example = tuple(torch.from_numpy(samples[0].arrays[n]) for n in input_names)
    model_dir = plan.out_root / spec.name
    base = _Variant(module, references, profile, {})
    variants: dict[str, _Variant | Exception] = {}
    fp32_artifacts: dict[str, _Fp32Artifact] = {}
    rows: list[ExportRow] = []

    def variant_for(recipe: Any) -> _Variant:
        if recipe.kind != "module":
            return base
        key = recipe.module_part           # prune50 and prune50+w8a8 export one pruned model
        if key not in variants:
            try:
                made = module_for_recipe(recipe, module, example)
                refs = torch_references(made.module, samples, input_names, output_names)
                prof = profile_model(lambda: copy.deepcopy(made.module).to("meta"), shapes)
                drift = versus_outputs(references, refs)
                details = {**made.details, "vs_original_pytorch_db": _finite_or_none(drift),
                           "original_params": profile.params, "original_macs": profile.macs}
                variants[key] = _Variant(made.module, refs, prof, details, made.warning)
            except (ValueError, RuntimeError) as exc:   # PruneError and RecipeError are ValueErrors
                variants[key] = exc
        found = variants[key]
        if isinstance(found, Exception):
            raise RecipeError(f"{key} cannot be applied to {spec.name}: {short_message(found)}")
        return found

    for fmt, recipe in jobs:
        exporter = exporters[fmt]
        row = ExportRow(spec.name, fmt, recipe.name, "unsupported")
        rows.append(row)
        if recipe.export_precision not in exporter.precisions:
            row.message = (f"{recipe.name} is not supported for {fmt} (its recipes: "
                           f"{', '.join(exporter.precisions)}); nothing was exported")
            continue
        final = model_dir / f"{fmt}-{recipe.name}"
        with progress.step(f"{spec.name}: {fmt} {recipe.name}"), staging_dir(model_dir, final.name) as work:
            try:
                variant = variant_for(recipe)
            except RecipeError as exc:
                row.status, row.message = "recipe-failed", str(exc)
                continue
            request = ExportRequest(module=variant.module, example_inputs=example, input_names=input_names,
                                    output_names=output_names, output_shapes=output_shapes,
                                    precision=recipe.export_precision, work_dir=work, stem=spec.name,
                                    dynamic_hw=plan.dynamic_hw, sample_inputs=[s.arrays for s in samples],
                                    calibration=calibration.arrays() if recipe.needs_calibration else (),
                                    options=plan.options)
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
            outputs: list = []
            report = evaluate(record, work, samples, variant.references, spec.gate_for(recipe.gate_name),
                              plan.parity_seed, spec.task_metric, outputs_sink=outputs)
            recipe_info: dict[str, Any] = {"name": recipe.name, "kind": recipe.kind, "summary": recipe.summary,
                                           **variant.details}
            fp32 = fp32_artifacts.get(fmt)
            if recipe.name == "fp32" and report.status != "error":
                fp32_artifacts[fmt] = _Fp32Artifact(record, final, outputs)
            elif fp32 is not None and len(outputs) == len(fp32.outputs):
                row.vs_fp32_artifact_db = versus_outputs(fp32.outputs, outputs)
                recipe_info["vs_fp32_artifact_db"] = _finite_or_none(row.vs_fp32_artifact_db)
                if collapse(report):
                    recipe_info["error_localization"] = localize(fp32.record, fp32.path, record, work,
                                                                 samples[0].arrays).to_dict()
            if recipe.needs_calibration and calibration is not None:
                recipe_info["calibration"] = calibration.to_dict()
            manifest = {
                "schema": MANIFEST_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "source": source.to_dict(),
                "model": {"name": spec.name, "summary": spec.summary, "task": spec.task,
                          "paper": spec.metadata.paper, "upstream": spec.metadata.upstream,
                          **variant.profile.to_dict()},
                "contract": {"inputs": [c.to_dict() for c in contracts],
                             "outputs": [{**c.to_dict(), "shape": list(s)} for c, s in zip(spec.outputs, output_shapes)]},
                "recipe": recipe_info, "artifact": record.to_dict(), "export_seconds": round(row.export_seconds, 2),
                "parity": report.to_dict(), "environment": _environment(),
            }
            write_json(work / "manifest.json", manifest)
            commit_dir(work, final)
        row.status = "pass" if report.passed else f"parity-{report.status}"
        row.route, row.bytes, row.engine = record.route, record.total_bytes, report.engine
        row.worst_psnr_db, row.path = report.worst_psnr_db, str(final)
        notes = [report.message, variant.warning, *record.warnings]
        if "error_localization" in recipe_info:
            notes.append(recipe_info["error_localization"]["summary"])
        row.message = "; ".join(n for n in notes if n)

    summary = ExportSummary(spec.name, source.description, profile.params, profile.macs,
                            [list(c.shape) for c in contracts], rows, time.perf_counter() - started)
    write_json(model_dir / "export.json", summary.to_dict())
    return summary
