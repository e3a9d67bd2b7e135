"""`edgeport export --executor ray`: bad input refused before any task runs, the matrix on Ray, then each
model's export.json and report.md in the output store, as the serial run writes them."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from edgeport.benchmarks.latency import BenchPlan
from edgeport.cluster.matrix import plan_tasks, summaries
from edgeport.cluster.ray_executor import bench_tasks, run_on_ray
from edgeport.cluster.store import OutputStore
from edgeport.errors import UsageError
from edgeport.export.plan import ExportPlan
from edgeport.export.results import ExportSummary
from edgeport.models import get_spec
from edgeport.models.source import resolve_inputs
from edgeport.parity_tests.manifest import find_manifests
from edgeport.report import export_markdown


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'edgeport[ray]' (and the same on every "
                         "cluster node)") from None


def _absolute(plan: ExportPlan) -> ExportPlan:
    """Files the plan names, as absolute paths: a worker does not start in the driver's folder."""
    def full(value: Path | str | None) -> Path | str | None:
        return Path(value).absolute() if value is not None and Path(str(value)).exists() else value

    model = plan.model
    if ".py:" in model:
        file, factory = model.rsplit(":", 1)
        model = f"{Path(file).absolute()}:{factory}"
    return replace(plan, model=model, weights=full(plan.weights), calib_dir=full(plan.calib_dir),
                   photos_dir=full(plan.photos_dir))


def _checked_plans(plans: list[ExportPlan]) -> list[ExportPlan]:
    """The serial run's plans, each model's name, settings and input size checked without building it, with
    absolute paths and the output root left to the store."""
    checked = []
    for plan in plans:
        plan = _absolute(replace(plan, out_root=Path(".")))
        spec = get_spec(plan.model, list(plan.input_shapes))
        spec.check_config(plan.config)
        resolve_inputs(spec, plan.input_hw, plan.config)
        checked.append(plan)
    return checked


def export_on_ray(plans: list[ExportPlan], out: Path | str, address: str | None, workers: int | None,
                  quiet: bool) -> list[ExportSummary]:
    _require_ray()
    plans = _checked_plans(plans)
    tasks = plan_tasks(plans)
    store = OutputStore(str(out))
    store.check()
    say = (lambda _: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    where = address or f"a local Ray with {workers or 'all'} workers"
    say(f"ray: {len(tasks)} tasks ({len(plans)} models) on {where}")
    started = time.perf_counter()
    results, attempts = run_on_ray(tasks, store, address, workers, say)
    out = summaries(tasks, results, time.perf_counter() - started)
    for summary in out:
        store.write_json(f"{summary.model}/export.json", summary.to_dict())
        local = store.local
        store.write_text(f"{summary.model}/report.md", export_markdown(
            summary, (local or Path(".")) / summary.model,
            None if local else (lambda rel, m=summary.model: store.exists(f"{m}/{rel}"))))
    for key, pids in sorted(attempts.items()):
        if len(pids) > 1:
            say(f"ray: {key} ran {len(pids)} times: its worker died (pids {', '.join(map(str, pids))}) and Ray "
                f"retried it")
    return out


def bench_on_ray(plan: BenchPlan, address: str | None, workers: int | None,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """One bench task per model folder; each needs the node's one `edgeport_bench` slot, so two benchmarks
    never share a node and measure each other. bench.json as the serial run writes it, each row with its node."""
    _require_ray()
    folders = sorted({p.parent.parent for p in find_manifests(Path(plan.root))})
    if not folders:
        raise FileNotFoundError(f"no manifest.json under {plan.root}: export something first (`edgeport export`)")
    runs = bench_tasks([replace(plan, root=f.absolute()) for f in folders], address, workers, say)
    merged = dict(runs[0])
    merged["rows"] = [{**row, "node": run["node"]} for run in runs for row in run["rows"]]
    merged["peaks"] = [{**p, "node": run["node"]} for run in runs for p in run["peaks"]]
    merged["machines"] = {run["node"]: run["machine"] for run in runs}
    merged["tasks"] = [{"folder": str(f), "node": run["node"], "window": run["window"]}
                       for f, run in zip(folders, runs)]
    merged["peak_problems"] = sorted({p for run in runs for p in run["peak_problems"]})
    return merged
