"""The export matrix as independent tasks, one per model x format x recipe, for an executor that runs them
anywhere (edgeport/cluster/ray_executor.py): each task prepares its model, exports one artifact in a private scratch
folder, and publishes the finished folder to the output store. A recipe task gets its format's fp32 artifact
from the fp32 task (as the serial run compares each recipe with it), so both runs write the same artifacts.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgeport.cluster.store import OutputStore
from edgeport.export.pipeline import export_job, frozen_heap, import_converters, is_fp32_base
from edgeport.export.plan import ExportPlan
from edgeport.export.preparation import VariantCache, plan_jobs, prepare
from edgeport.export.results import ArtifactOutcome, ExportRow, ExportSummary
from edgeport.progress import Progress

TASK_PID_DIR = "EDGEPORT_TASK_PID_DIR"   # each task attempt writes <dir>/<key>.<pid> (watchdogs, the kill test)


@dataclass(frozen=True)
class MatrixTask:
    plan: ExportPlan      # the model's plan; the task runs one of its jobs
    format: str
    recipe: str

    @property
    def model(self) -> str:
        return self.plan.model

    @property
    def key(self) -> str:
        return f"{self.model}/{self.format}-{self.recipe}"


@dataclass(frozen=True)
class Fp32Artifact:
    """What a recipe task needs of its format's fp32 artifact: the folder's files and the runtime outputs."""
    outcome: ArtifactOutcome           # its path is the producer's scratch
    files: dict[str, bytes] = field(default_factory=dict)

    def restore(self, model_dir: Path) -> ArtifactOutcome:
        folder = model_dir / f"{self.outcome.format}-fp32"
        for rel, data in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        return replace(self.outcome, path=folder)


@dataclass(frozen=True)
class TaskResult:
    key: str
    row: ExportRow                    # path pointing into the output store
    seconds: float
    fp32: Fp32Artifact | None = None   # for the recipe tasks of this format, when this was the fp32 task
    header: tuple = ()                 # (source description, params, macs, input shapes) for export.json


def plan_tasks(plans: list[ExportPlan]) -> list[MatrixTask]:
    """Every model's jobs, fp32 first within each format. Unknown formats or recipes raise here."""
    tasks = []
    for plan in plans:
        tasks += [MatrixTask(plan, job.format.name, job.recipe.name) for job in plan_jobs(plan.formats, plan.recipes)]
    return tasks


def _mark_started(task: MatrixTask) -> None:
    folder = os.environ.get(TASK_PID_DIR)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{task.key.replace('/', '__')}.{os.getpid()}").write_text(str(os.getpid()))


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_task(task: MatrixTask, store: OutputStore, fp32: Fp32Artifact | None,
             report: Callable[[str], None] = lambda _: None) -> TaskResult:
    """One artifact: exported and judged in a scratch folder, then published to the store as a whole."""
    _mark_started(task)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="edgeport-task-"))
    try:
        plan = replace(task.plan, formats=(task.format,), recipes=(task.recipe,), out_root=scratch)
        prepared = prepare(plan, Progress(enabled=False))
        fp32_outcome = fp32.restore(prepared.model_dir) if fp32 is not None else None
        import_converters(prepared.jobs)
        with frozen_heap():
            outcome = export_job(prepared, prepared.jobs[0], VariantCache(prepared, report), fp32_outcome,
                                 Progress(enabled=False))
        published = store.publish(outcome.path, f"{prepared.spec.name}/{outcome.path.name}") if outcome.path else ""
        row = replace(ExportRow.of(prepared.spec.name, outcome), path=published)
        keep = (Fp32Artifact(replace(outcome, path=None), _folder_files(outcome.path))
                if is_fp32_base(outcome) else None)
        base = prepared.base.profile
        header = (prepared.source.description, base.params, base.macs, tuple(c.shape for c in prepared.contracts))
        return TaskResult(task.key, row, time.perf_counter() - started, keep, header)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def failed_result(task: MatrixTask, message: str, seconds: float = 0.0) -> TaskResult:
    """A task that could not finish (its error, or retries used up): a failed row, the others go on."""
    return TaskResult(task.key, ExportRow(task.model, task.format, task.recipe, "task-failed", message=message),
                      seconds)


def summaries(tasks: list[MatrixTask], results: dict[str, TaskResult], seconds: float) -> list[ExportSummary]:
    """One ExportSummary per model, rows in the serial run's order."""
    out, by_model = [], {}
    for task in tasks:
        by_model.setdefault(task.model, []).append(results[task.key])
    for got in by_model.values():
        header = next((r.header for r in got if r.header), ("", 0, 0, ()))
        out.append(ExportSummary(got[0].row.model, header[0], header[1], header[2], header[3],
                                 tuple(r.row for r in got), seconds, "process (one Ray task per row)"))
    return out
