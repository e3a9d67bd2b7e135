"""`edgeport export --executor ray`: bad input refused before any task runs, the matrix on Ray, then each
model's export.json and report.md in the output store, as the serial run writes them."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def _require_ray() -> None:
    from edgeport.errors import UsageError

    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'edgeport[ray]' (and the same on every "
                         "cluster node)") from None


def _absolute(plan: Any) -> Any:
    """Files the plan names, as absolute paths: a worker does not start in the driver's folder."""
    def full(value: Any) -> Any:
        return Path(value).absolute() if value is not None and Path(str(value)).exists() else value

    model = plan.model
    if ".py:" in model:
        file, factory = model.rsplit(":", 1)
        model = f"{Path(file).absolute()}:{factory}"
    return replace(plan, model=model, weights=full(plan.weights), calib_dir=full(plan.calib_dir),
                   photos_dir=full(plan.photos_dir))


def _checked_plans(args: argparse.Namespace) -> list[Any]:
    """The serial run's plans, each model's name, settings and input size checked without building it."""
    from edgeport.cli import _export_targets, export_plan
    from models import get_spec
    from models.source import resolve_inputs

    plans = []
    for model in _export_targets(args):
        plan = _absolute(replace(export_plan(args, model, args.recipes), out_root=Path(".")))
        spec = get_spec(plan.model, list(plan.input_shapes))
        spec.check_config(plan.config)
        resolve_inputs(spec, plan.input_hw, plan.config)
        plans.append(plan)
    return plans


def export_on_ray(args: argparse.Namespace) -> list[Any]:
    from edgeport.matrix import plan_tasks, summaries
    from edgeport.ray_executor import run_on_ray
    from edgeport.report import export_markdown
    from edgeport.store import OutputStore

    _require_ray()
    plans = _checked_plans(args)
    tasks = plan_tasks(plans)
    store = OutputStore(str(args.out))
    store.check()
    say = (lambda _: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    where = args.ray_address or f"a local Ray with {args.ray_workers or 'all'} workers"
    say(f"ray: {len(tasks)} tasks ({len(plans)} models) on {where}")
    started = time.perf_counter()
    results, attempts = run_on_ray(tasks, store, args.ray_address, args.ray_workers, say)
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


def bench_on_ray(plan: Any, address: str | None, workers: int | None, say: Any) -> dict[str, Any]:
    """One bench task per model folder; each needs the node's one `edgeport_bench` slot, so two benchmarks
    never share a node and measure each other. bench.json as the serial run writes it, each row with its node."""
    from edgeport.ray_executor import bench_tasks
    from parity_tests.manifest import find_manifests

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
