"""The export pipeline: spec -> module -> each format and recipe -> parity -> manifest, atomically.

Each step returns a typed result: prepare() the validated inputs and PyTorch's outputs, export_job() one
ArtifactOutcome per (format, recipe); the summary rows are derived from those outcomes.
"""
from __future__ import annotations

import gc
import importlib
import platform
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from edgeport import __version__
from edgeport.export.artifact_about import artifact_about
from edgeport.export.precision_search import Attempt, PrecisionSearch, describe, search_precision
from edgeport.export.plan import ExportPlan
from edgeport.export.preparation import Job, Prepared, Variant, VariantCache, prepare
from edgeport.export.results import ArtifactOutcome, ExportRow, ExportSummary, ModelHeader
from edgeport.exporters.base import ExportError, ExportRequest, failing_op, short_message
from edgeport.exporters.image_io import encodings
from edgeport.models.spec import is_noise_sample
from edgeport.parity_tests.figures import PARITY_FIGURE, grid_for
from edgeport.parity_tests.gate import evaluate, versus_outputs
from edgeport.parity_tests.localize import collapse, localize
from edgeport.parity_tests.manifest import MANIFEST, Manifest, ModelInfo, RecipeInfo
from edgeport.progress import Progress
from edgeport.quantize.recipes import RecipeError
from edgeport.report import export_markdown
from edgeport.runtimes.atomic import commit_dir, locked, remove_leftovers, staging_dir, write_json, write_text
from edgeport.runtimes.json_numbers import db_for_json

if TYPE_CHECKING:
    from edgeport.parity_tests.gate import Evaluation
    from edgeport.parity_tests.report import ParityReport
    from edgeport.quantize.recipes import Recipe
    from edgeport.runtimes.artifact import ArtifactRecord

__all__ = ["ExportPlan", "ExportRow", "ExportSummary", "run_in_process"]


def _environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "edgeport": __version__}


def _convert(p: Prepared, job: Job, variant: Variant, work: Path,
             keep: tuple[str, ...] = ()) -> tuple[ArtifactRecord | None, str, str | None]:
    """(record, '', None) or, when the converter refused, (None, its message, the op it names): a converter's
    failure is this row's outcome, never raised past it."""
    request = ExportRequest(module=variant.module, example_inputs=p.example(), input_names=p.input_names,
                            output_names=p.output_names, output_shapes=p.output_shapes,
                            precision=job.recipe.export_precision, work_dir=work, stem=p.spec.name,
                            dynamic_hw=p.plan.dynamic_hw, sample_inputs=[s.arrays for s in p.samples],
                            calibration=p.calibration.arrays() if job.recipe.needs_calibration else (),
                            options=p.plan.options, input_pixels=encodings(p.contracts, p.plan.io),
                            output_pixels=encodings(p.spec.outputs, p.plan.io),
                            about=artifact_about(p, job.recipe.name), keep_float=keep)
    try:
        return job.format.exporter.export(request), "", None
    except ExportError as exc:
        return None, str(exc), exc.op
    except Exception as exc:  # converters raise anything; one format's failure never stops the rest
        return None, short_message(exc), failing_op(str(exc))


def _attempt(p: Prepared, job: Job, variant: Variant, work: Path, keep: tuple[str, ...] = ()) -> Attempt:
    """Export into `work` and judge the artifact in its runtime."""
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    record, problem, op = _convert(p, job, variant, work, keep)
    seconds = time.perf_counter() - t0
    if record is None:
        return Attempt(work, problem=problem, op=op, seconds=seconds)
    return Attempt(work, record, evaluate(record, work, p.samples, variant.references, job.recipe.gate(p.spec.gates),
                                          p.plan.parity_seed, p.spec.task_metric), seconds=seconds)


def _searched(p: Prepared, job: Job, variant: Variant, fp32: ArtifactOutcome | None, base: Attempt,
              work: Path, note: Callable[[str], None]) -> tuple[Attempt, PrecisionSearch]:
    """<precision>+auto: the mixed-precision search (edgeport/export/precision_search.py) from the first attempt;
    each re-export is a line of progress (a trial can take minutes on a large net)."""
    def export(keep: tuple[str, ...], folder: Path, recipe: Recipe | None) -> Attempt:
        attempt = _attempt(p, job if recipe is None else replace(job, recipe=recipe), variant, folder, keep)
        what = f"{recipe.name} for the ranking" if recipe is not None else f"{len(keep)} units kept"
        note(f"{p.spec.name}: {job.format.name} {job.recipe.name} search: {what}: {_verdict(attempt)} "
             f"({attempt.seconds:.0f} s)")
        return attempt
    return search_precision(p, job, variant, fp32, base, export, work)


def _verdict(attempt: Attempt) -> str:
    report = attempt.evaluation.report if attempt.evaluation is not None else None
    if report is None or report.gated_db is None:
        return f"failed: {attempt.problem[:80] or (report.status if report else 'no verdict')}"
    return f"{report.gated_db:.1f} dB, {'pass' if attempt.passed else 'miss'}"


def _recipe_details(p: Prepared, job: Job, variant: Variant, evaluation: Evaluation, fp32: ArtifactOutcome | None,
                    record: ArtifactRecord, work: Path) -> dict[str, Any]:
    """What the recipe did, and how far the artifact sits from the fp32 artifact of its format (with the
    layer where the error starts when it collapsed)."""
    details: dict[str, Any] = dict(variant.details)
    if job.recipe.needs_calibration and p.calibration is not None:
        details["calibration"] = p.calibration.to_dict()
    if job.recipe.kind == "module" and evaluation.outputs:   # what an app gets against the model it started from
        photos = [i for i, s in enumerate(p.samples) if not is_noise_sample(s.label)]
        details["artifact_vs_original_photos_db"] = db_for_json(versus_outputs(
            [p.base.references[i] for i in photos], [evaluation.outputs[i] for i in photos]))
    if fp32 is None or job.recipe.name == "fp32" or len(fp32.outputs) != len(evaluation.outputs):
        return details
    details["vs_fp32_artifact_db"] = db_for_json(versus_outputs(fp32.outputs, evaluation.outputs))
    if collapse(evaluation.report):
        details["error_localization"] = localize(fp32.manifest.artifact, fp32.path, record, work,
                                                 p.samples[0].arrays).to_dict()
    return details


def _manifest(p: Prepared, job: Job, variant: Variant, record: ArtifactRecord, report: ParityReport,
              details: dict[str, Any], seconds: float) -> Manifest:
    spec, meta = p.spec, p.spec.metadata
    outputs = tuple(c.with_shape(s) for c, s in zip(spec.outputs, p.output_shapes))
    return Manifest(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), source=p.source,
        model=ModelInfo(spec.name, spec.summary, spec.task, variant.profile.params, variant.profile.macs,
                        meta.paper, meta.upstream, meta.notes, spec.architecture_record(p.plan.config)),
        inputs=p.contracts, outputs=outputs, recipe=RecipeInfo(job.recipe.name, job.recipe.kind, job.recipe.summary,
                                                               details),
        artifact=record, parity=report, export_seconds=seconds, environment=_environment(), photos=p.photo_set)


def _recovery_note(variant: Variant) -> str:
    """prune<N>+recover: how close to the unpruned model the fine-tune got, on the parity samples."""
    recovery = variant.details.get("recovery")
    if not recovery:
        return ""
    d = variant.details
    shown = [("-" if v is None else f"{v:.1f}") for v in (d.get("vs_original_photos_before_recovery_db"),
                                                          d.get("vs_original_photos_db"))]
    task = " ".join(f"{k} {(d.get('vs_original_task_before_recovery') or {}).get(k, float('nan')):.3f} -> {v:.3f}"
                    for k, v in (d.get("vs_original_task") or {}).items())
    return (f"recovery: photos {shown[0]} -> {shown[1]} dB against the unpruned model{', ' + task if task else ''} "
            f"({recovery['steps']} steps, {recovery['seconds']:.0f} s, stopped: {recovery['stopped_because']})")


def join_notes(*parts: str) -> str:
    return "; ".join(n for n in parts if n)


def export_job(p: Prepared, job: Job, variants: VariantCache, fp32: ArtifactOutcome | None,
               progress: Progress) -> ArtifactOutcome:
    """One format and recipe: staged, exported, judged in its runtime, and put in place with its manifest."""
    fmt, recipe = job.format, job.recipe
    if recipe.export_precision not in fmt.recipes:
        return ArtifactOutcome(fmt.name, recipe.name, "unsupported", f"{recipe.name} is not supported for {fmt.name} "
                               f"(its recipes: {', '.join(fmt.recipes)}); nothing was exported")
    final = p.model_dir / f"{fmt.name}-{recipe.name}"
    with progress.step(f"{p.spec.name}: {fmt.name} {recipe.name}"), staging_dir(p.model_dir, final.name) as work:
        try:
            variant = variants.get(recipe)
        except RecipeError as exc:
            return ArtifactOutcome(fmt.name, recipe.name, "recipe-failed", str(exc))
        attempt = _attempt(p, job, variant, work)
        if attempt.record is None:
            return ArtifactOutcome(fmt.name, recipe.name, "export-failed", attempt.problem, attempt.op, attempt.seconds)
        search = None
        if recipe.auto:
            attempt, search = _searched(p, job, variant, fp32, attempt, work, progress.note)
        record, evaluation, seconds = attempt.record, attempt.evaluation, attempt.seconds
        details = _recipe_details(p, job, variant, evaluation, fp32, record, work)
        if search is not None:
            details["mixed_precision"] = search.to_dict()
        manifest = _manifest(p, job, variant, record, evaluation.report, details, seconds)
        grid_for(work / PARITY_FIGURE, f"{p.spec.name} {fmt.name} {recipe.name}", evaluation.report, p.samples,
                 variant.references, evaluation.outputs, p.contracts, manifest.outputs)
        write_json(work / MANIFEST, manifest.to_dict())
        commit_dir(work, final)
    report = evaluation.report
    message = join_notes(describe(search, recipe.name) if search is not None else "", _recovery_note(variant),
                     report.message, variant.warning, *record.warnings,
                     details.get("error_localization", {}).get("summary", ""))
    return ArtifactOutcome(fmt.name, recipe.name, "pass" if report.passed else f"parity-{report.status}", message,
                           None, seconds, manifest, final, evaluation.outputs)


def is_fp32_base(outcome: ArtifactOutcome) -> bool:
    """An fp32 artifact that ran in its runtime: the one its format's other recipes are compared with."""
    return outcome.recipe == "fp32" and outcome.manifest is not None and outcome.manifest.parity.status != "error"


def begin_export(plan: ExportPlan, progress: Progress, began: float) -> Prepared:
    """The model prepared (bad input raises before anything is written), and folders killed runs left removed."""
    prepared = prepare(plan, progress)
    for leftover in remove_leftovers(prepared.model_dir, older_than=began):
        progress.note(f"removed {leftover.name}: left by an export that was killed")
    return prepared


def header_of(p: Prepared) -> ModelHeader:
    base = p.base.profile
    return ModelHeader(p.spec.name, p.source.description, base.params, base.macs, tuple(c.shape for c in p.contracts),
                       p.model_dir, tuple((j.format.name, j.recipe.name) for j in p.jobs))


def import_converters(jobs: Sequence[Job]) -> None:
    """The converters these rows use, imported before the first row; a failure shows in its row instead."""
    for name in sorted({module for job in jobs for module in job.format.preload}):
        try:
            importlib.import_module(name)
        except Exception:
            pass


@contextmanager
def frozen_heap() -> Iterator[None]:
    """The rows run with every object alive now (the converters' modules: ~850k objects) out of the cyclic
    collector's sight. coremltools runs a full collection per conversion and tracing triggers many; walking
    those objects every time was a fifth of an export's time (three zoo models in four formats: 118.8 s ->
    93.2 s). Unfrozen after, so nothing outlives the rows; a process that froze its own heap (a pre-forking
    server) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def guarded_job(p: Prepared, job: Job, variants: VariantCache, fp32: ArtifactOutcome | None,
                progress: Progress) -> ArtifactOutcome:
    """export_job, with what it raises past the converters (a full disk while the manifest is written, a
    runtime's own error) as this row's failure: the other rows and the summary go on."""
    try:
        return export_job(p, job, variants, fp32, progress)
    except Exception as exc:
        return ArtifactOutcome(job.format.name, job.recipe.name, "export-failed", short_message(exc),
                               failing_op(str(exc)))


def publish_summary(header: ModelHeader, outcomes: list[ArtifactOutcome], seconds: float,
                    isolation: str) -> ExportSummary:
    """export.json and report.md, written under the model folder's lock so both come from one run."""
    summary = ExportSummary(header.model, header.source, header.params, header.macs, header.input_shapes,
                            tuple(ExportRow.of(header.model, o) for o in outcomes), seconds, isolation)
    try:
        with locked(header.model_dir / ".export.lock"):
            write_json(header.model_dir / "export.json", summary.to_dict())
            write_text(header.model_dir / "report.md", export_markdown(summary, header.model_dir))
    except OSError as exc:      # a full disk: the rows are still the run's result, and the summary says why
        return replace(summary, unwritten=f"export.json and report.md were not written to {header.model_dir}: "
                                          f"{exc.strerror or exc}")
    return summary


def run_in_process(plan: ExportPlan, progress: Progress, isolation: str) -> ExportSummary:
    """Every row in this process: for a model object that cannot be sent to a row process, or when asked
    (EDGEPORT_IN_PROCESS=1, for a debugger or a test that patches the pipeline). A converter crash ends it."""
    started, began = time.perf_counter(), time.time()
    prepared = begin_export(plan, progress, began)
    variants = VariantCache(prepared, progress.note)
    fp32: dict[str, ArtifactOutcome] = {}
    outcomes = []
    import_converters(prepared.jobs)
    with frozen_heap():
        for job in prepared.jobs:
            outcome = guarded_job(prepared, job, variants, fp32.get(job.format.name), progress)
            if is_fp32_base(outcome):
                fp32[job.format.name] = outcome
            outcomes.append(outcome)
    return publish_summary(header_of(prepared), outcomes, time.perf_counter() - started, isolation)
