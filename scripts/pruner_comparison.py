"""Structured pruning, two ways, over the zoo and the architecture corpus: edgeport's own channel pruner
(quantize/prune.py) against Torch-Pruning (VainF/Torch-Pruning, DepGraph, MetaPruner with L2 magnitude).

Each pruner is asked for 50% of the MACs. A model counts as correctly pruned when the pruned model runs on
the example input, its outputs keep their shapes, and at least 40% of the MACs are gone (both count MACs the
same way, edgeport's profile). Torch-Pruning gets a global channel ratio found by bisection, and the layer
that produces each output is left whole (as edgeport's pruner leaves any group a model output needs). The
PSNR of each pruned model against the unpruned one (example input, no fine-tuning) is reported too.
Writes pruners.json and pruners.md.

    .venv/bin/python scripts/pruner_comparison.py --out /tmp/pruners [--only realesr-general-x4v3,resnet18]
"""
from __future__ import annotations

import argparse
import copy
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
from edgeport.runtimes.atomic import write_json, write_text
from results_page import write_results_page  # this folder: the script's own

TARGET, ENOUGH = 50.0, 40.0


def zoo_cases() -> dict[str, Callable[[], tuple[nn.Module, tuple]]]:
    from edgeport.models import all_specs
    from edgeport.models.source import instantiate, resolve_inputs, source_for

    def build(name: str) -> Callable[[], tuple[nn.Module, tuple]]:
        def make() -> tuple[nn.Module, tuple]:
            spec = all_specs()[name]
            contracts = resolve_inputs(spec, None, {})
            module = instantiate(spec, source_for(spec, {}, None, 0), contracts)
            arrays = spec.make_inputs(contracts, 0)[0].arrays
            return module, tuple(torch.tensor(arrays[c.name]) for c in contracts)
        return make
    return {name: build(name) for name in all_specs()}


def corpus_cases() -> dict[str, Callable[[], tuple[nn.Module, tuple]]]:
    from edgeport.models.corpus.architectures import ARCHITECTURES, INPUT_SIZE

    return {f"corpus/{n}": (lambda f=f: (f().eval(), (torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE),)))
            for n, f in ARCHITECTURES.items()}


def _macs(module: nn.Module, example: tuple) -> int:
    from edgeport.models.profile import profile_model

    return profile_model(lambda: copy.deepcopy(module).to("meta"), [tuple(t.shape) for t in example]).macs


def _shapes(module: nn.Module, example: tuple) -> list[tuple[int, ...]]:
    with torch.no_grad():
        out = module(*example)
    return [tuple(t.shape) for t in (out if isinstance(out, (tuple, list)) else (out,))]


def _psnr_db(module: nn.Module, pruned: nn.Module, example: tuple) -> float | None:
    """Worst PSNR of the pruned model's outputs against the unpruned model's (no fine-tuning either way)."""
    with torch.no_grad():
        want, got = module(*example), pruned(*example)
    pairs = zip(*(o if isinstance(o, (tuple, list)) else (o,) for o in (want, got)))
    worst = float("inf")
    for a, b in pairs:
        mse = float(((a - b) ** 2).mean())
        span = float(a.max() - a.min()) or 1.0
        worst = min(worst, 10 * math.log10(span ** 2 / mse) if mse > 0 else float("inf"))
    return None if math.isinf(worst) else round(worst, 1)


def _output_layers(module: nn.Module, example: tuple) -> list[nn.Module]:
    """The last conv / linear that runs: the layer whose channels are the output's."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in module.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        module(*example)
    for h in hooks:
        h.remove()
    return order[-1:]


def edgeport_pruner(module: nn.Module, example: tuple) -> nn.Module:
    from edgeport.quantize.prune import prune_channels

    return prune_channels(module, example, TARGET).module


def torch_pruning(module: nn.Module, example: tuple) -> nn.Module:
    import torch_pruning as tp

    base = _macs(module, example)

    def pruned(ratio: float) -> nn.Module:
        model = copy.deepcopy(module)
        pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=_output_layers(model, example),
                                      global_pruning=False)
        pruner.step()
        return model
    low, high, best = 0.0, 0.9, None
    for _ in range(7):      # the channel ratio whose MACs come closest to the target from above
        mid = (low + high) / 2
        model = pruned(mid)
        removed = 100 * (1 - _macs(model, example) / base)
        if removed >= TARGET:
            high, best = mid, model
        else:
            low = mid
    return best if best is not None else pruned(high)


def judge(name: str, make: Callable, prune: Callable) -> dict[str, Any]:
    module, example = make()
    shapes, base = _shapes(module, example), _macs(module, example)
    started = time.perf_counter()
    try:
        pruned = prune(copy.deepcopy(module), example)
        got = _shapes(pruned, example)
        removed = 100 * (1 - _macs(pruned, example) / base)
    except Exception as exc:  # noqa: BLE001  (a pruner's failure is this row's result)
        return {"model": name, "ok": False, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                "seconds": round(time.perf_counter() - started, 1), "trace": traceback.format_exc()[-600:]}
    why = ("" if got == shapes and removed >= ENOUGH else
           f"output shapes {got} != {shapes}" if got != shapes else f"only {removed:.0f}% of MACs removed")
    return {"model": name, "ok": not why, "why": why, "macs_removed_percent": round(removed, 1),
            "psnr_db": _psnr_db(module, pruned, example) if got == shapes else None,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("--docs", action="store_true", help="also write docs/results/pruner_comparison.md (date, machine, command)")
    args = parser.parse_args()
    started = time.monotonic()
    cases = {**zoo_cases(), **corpus_cases()}
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only.split(",")}
    rows = []
    for name, make in cases.items():
        for label, prune in (("edgeport", edgeport_pruner), ("torch-pruning", torch_pruning)):
            row = {"pruner": label, **judge(name, make, prune)}
            print(f"{name:32s} {label:14s} {'ok' if row['ok'] else 'FAIL'} {row.get('macs_removed_percent', '-')} "
                  f"{row['why'][:90]}", flush=True)
            rows.append(row)
    counts = {p: sum(r["ok"] for r in rows if r["pruner"] == p) for p in ("edgeport", "torch-pruning")}
    write_json(args.out / "pruners.json", {"target_percent": TARGET, "enough_percent": ENOUGH, "counts": counts,
                                           "models": len(cases), "rows": rows})
    lines = ["| model | edgeport (quantize/prune.py) | Torch-Pruning 1.6.1 (MetaPruner, L2) |", "|---|---|---|"]
    for name in cases:
        cells = [next(r for r in rows if r["model"] == name and r["pruner"] == p)
                 for p in ("edgeport", "torch-pruning")]
        lines.append(f"| {name} | " + " | ".join(
            (f"ok, {c['macs_removed_percent']:.0f}% MACs, {c['psnr_db']} dB" if c["ok"] else f"no: {c['why'][:80]}")
            for c in cells) + " |")
    lines.append(f"\ncorrectly pruned: edgeport {counts['edgeport']}/{len(cases)}, "
                 f"Torch-Pruning {counts['torch-pruning']}/{len(cases)}")
    write_text(args.out / "pruners.md", "\n".join(lines) + "\n")
    if args.docs:
        write_results_page("pruner_comparison", "\n".join(lines), time.monotonic() - started)
    print(lines[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
