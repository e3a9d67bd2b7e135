"""Mixed precision (<precision>+auto): keep the fewest layers at higher precision that bring an artifact over
its gate.

The artifact that missed is compared tensor by tensor with the fp32 artifact of the same model and format
(parity_tests/localize.py), and each unit the format's tooling can keep (an ONNX node, a MIL op, a TFLite
output tensor, a torch module on the PT2E route) is blamed for the noise it adds to what its inputs carry.
Prefixes of that ranking are re-exported and re-judged in the runtime (1, 2, 4, ... units, then bisection)
until the smallest passing prefix is found, or everything ranked is kept and the gate still fails. As NNCF's
quantize_with_accuracy_control, the ranking is computed once; the verdict is always the runtime's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edgeport.parity_tests.localize import blame_units, by_blame, concentrated
from edgeport.parity_tests.report import gated
from edgeport.quantize.pt2e import as_batches, pt2e_traces
from edgeport.quantize.recipes import parse_recipe
from edgeport.quantize.steps import step_for
from edgeport.runtimes.json_numbers import db_for_json

if TYPE_CHECKING:
    from edgeport.export.preparation import Job, Prepared, Variant
    from edgeport.export.results import ArtifactOutcome
    from edgeport.parity_tests.gate import Evaluation
    from edgeport.parity_tests.localize import UnitBlame
    from edgeport.parity_tests.report import ParityReport
    from edgeport.quantize.recipes import Recipe
    from edgeport.quantize.steps import RecipeStep
    from edgeport.runtimes.artifact import ArtifactRecord


MAX_TRIALS = 14            # exports per search; the bisection stops early rather than run past it
PROBE_UNITS = 8            # each ordering is first tried with this many units kept
TOP_SHOWN = 10


@dataclass(frozen=True)
class SearchTrial:
    kept: int
    gated_db: float | None
    passed: bool
    status: str
    bytes: int
    seconds: float
    ordering: str = "blame"

    def to_dict(self) -> dict[str, Any]:
        db = db_for_json(self.gated_db)
        return {"ordering": self.ordering, "kept": self.kept, "gated_db": db, "passed": self.passed,
                "status": self.status, "bytes": self.bytes, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class PrecisionSearch:
    outcome: str                 # not-needed, passed, not-saved, cannot-search
    message: str
    units: str = ""              # what the kept names are
    ranking_engine: str = ""     # where the ranking's tensors were read
    ranked: int = 0
    kept: tuple[UnitBlame, ...] = ()   # in ranking order
    trials: tuple[SearchTrial, ...] = ()
    top: tuple[UnitBlame, ...] = ()    # the head of the ranking, kept or not (what a person would look at first)
    base_bytes: int = 0
    final_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_names(self) -> tuple[str, ...]:
        return kept_units(self.kept)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "message": self.message, "units": self.units, **self.extra,
                "ranking_engine": self.ranking_engine, "ranked_units": self.ranked,
                "kept_units": list(self.kept_names), "kept": [b.to_dict() for b in self.kept],
                "ranking_head": [b.to_dict() for b in self.top],
                "trials": [t.to_dict() for t in self.trials],
                "size_cost_bytes": self.final_bytes - self.base_bytes if self.kept else 0,
                "latency_cost": "measured by `edgeport tune` / `edgeport bench` (the recipe and its +auto row)"}


def kept_units(blamed: Sequence[UnitBlame]) -> tuple[str, ...]:
    """The names handed to the format's tooling for a prefix of the ranking: each unit and the consumers of its
    int8 edge, once each, in ranking order."""
    return tuple(dict.fromkeys(u for b in blamed for u in b.units))


def smallest_passing_prefix(count: int, passes: Callable[[int], bool], max_trials: int = MAX_TRIALS,
                            known: dict[int, bool] | None = None) -> int | None:
    """The smallest k in 1..count with passes(k), assuming more kept never hurts: doubling, then bisection
    between the last failure and the first pass. None when count itself fails (or the trials run out first).
    `known`: verdicts already measured (they count against max_trials)."""
    tried: dict[int, bool] = dict(known or {})

    def attempt(k: int) -> bool:
        if k not in tried:
            tried[k] = passes(k)
        return tried[k]

    low, k = 0, 1
    while True:
        k = min(k, count)
        if len(tried) >= max_trials:
            return None
        if attempt(k):
            break
        if k == count:
            return None
        low, k = k, k * 2
    high = k
    while high - low > 1 and len(tried) < max_trials:
        mid = (low + high) // 2
        if attempt(mid):
            high = mid
        else:
            low = mid
    return high


def _short(name: str) -> str:
    """A TFLite tensor name carries the whole module path ('.../Sequential_0/Conv2d_0;2'): its last part."""
    return name.split(";")[0].rsplit("/", 1)[-1][:48]


def describe(search: PrecisionSearch, recipe: str) -> str:
    """One line for the summary table's notes."""
    if search.outcome == "passed":
        kept = search.kept_names
        names = ", ".join(_short(n) for n in kept[:4]) + (f" +{len(kept) - 4} more" if len(kept) > 4 else "")
        return (f"{recipe}: {len(kept)} {search.units} kept at higher precision (top {len(search.kept)} of "
                f"{search.ranked} ranked) "
                f"({names}; {len(search.trials)} trials, +{(search.final_bytes - search.base_bytes) / 1e3:.0f} KB)")
    return f"{recipe}: {search.message}"


@dataclass(frozen=True)
class Attempt:
    """One export into a folder, judged: record and evaluation, or why the converter refused."""
    folder: Path
    record: ArtifactRecord | None = None
    evaluation: Evaluation | None = None
    problem: str = ""
    op: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.evaluation is not None and self.evaluation.report.passed


Exporting = Callable[[tuple[str, ...], Path, "Recipe | None"], Attempt]   # (keep, folder, recipe or None) -> Attempt


def _worst_sample(p: Prepared, report: ParityReport) -> dict[str, Any]:
    """The gated sample the artifact does worst on: the ranking is read there."""
    worst = min(gated(report.samples, report.gate), key=lambda s: s.metrics.psnr_db, default=None)
    chosen = next((s for s in p.samples if worst is not None and s.label == worst.sample), p.samples[0])
    return chosen.arrays


def _artifact_blame(p: Prepared, job: Job, fp32: ArtifactOutcome | None, base: Attempt, sample: dict,
                    export: Exporting, scratch: Path) -> tuple[list[UnitBlame], str]:
    """Units ranked from the artifact's own tensors against an fp32 artifact of the same module and format."""
    fmt = job.format
    if fmt.read_tensors is None:
        raise ValueError(f"reading {fmt.label}'s intermediate tensors is not implemented")
    if fp32 is None or job.recipe.kind == "module":
        fp32 = export((), scratch, parse_recipe("fp32"))
        if fp32.record is None:
            raise ValueError(f"the fp32 reference artifact failed: {fp32.problem}")
        ref_record, ref_dir = fp32.record, fp32.folder
    else:
        ref_record, ref_dir = fp32.manifest.artifact, fp32.path
    if ref_record.route != base.record.route:
        raise ValueError(f"the fp32 artifact came from {ref_record.route} and this one from {base.record.route}")
    reference = fmt.read_tensors(ref_record, ref_dir, sample)
    compressed = fmt.read_tensors(base.record, base.folder, sample)
    edges = bool(step_for(fmt.name, job.recipe.export_precision).options.get("edges"))
    return blame_units(reference, compressed, fmt.channel_axis, edges), fmt.tensors_engine or fmt.label


def _torch_blame(p: Prepared, job: Job, variant: Variant, step: RecipeStep, sample: dict) -> tuple[list[UnitBlame], str]:
    """Modules ranked from the PT2E program (float vs its quantize/dequantize form), which the converter
    translates op for op."""
    names = p.input_names
    calib = as_batches(p.calibration.arrays(), names)
    reference, quantized = pt2e_traces(variant.module, p.example(), calib, step.options["quantizer"](),
                                       as_batches([sample], names)[0])
    return blame_units(reference, quantized, 1), "PyTorch, PT2E program (fake-quantized)"


def _adopt(folder: Path, work: Path) -> None:
    """Make the chosen trial's files the artifact's (the staging folder `work` holds the first attempt)."""
    import shutil

    for child in list(work.iterdir()):
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    for child in list(folder.iterdir()):
        shutil.move(str(child), str(work / child.name))


def _trial(k: int, a: Attempt, ordering: str) -> SearchTrial:
    report = a.evaluation.report if a.evaluation is not None else None
    return SearchTrial(k, report.gated_db if report else None, a.passed,
                       report.status if report else f"export-failed: {a.problem[:120]}",
                       a.record.total_bytes if a.record is not None else 0, a.seconds, ordering)


def _rank(p: Prepared, job: Job, variant: Variant, fp32: ArtifactOutcome | None, base: Attempt,
          export: Exporting, scratch: Path) -> tuple[list[tuple[str, list[UnitBlame]]], str, str]:
    """The orderings to search, most promising first, the engine the tensors were read with, and the unit
    kind; raises ValueError when the format cannot rank. Blame order finds a broken layer; graph order (from
    the input) suits error that accumulates and grows along the network, where the earliest rounding is
    amplified most."""
    step = step_for(job.format.name, job.recipe.export_precision)
    if not step.keeps:
        raise ValueError(f"{job.format.label} {job.recipe.export_precision} ({step.tool}) cannot keep chosen "
                         "layers at higher precision")
    sample = _worst_sample(p, base.evaluation.report)
    if step.keeps == "torch":
        units, engine = _torch_blame(p, job, variant, step, sample)
        kind = "torch modules (PT2E)"
    else:
        units, engine = _artifact_blame(p, job, fp32, base, sample, export, scratch / "fp32")
        kind = job.format.unit_kind
    orderings = [("blame", by_blame(units)), ("graph order", list(units))]
    return (orderings if concentrated(units) else orderings[::-1]), engine, kind


def _search_one(order: list[UnitBlame], export: Exporting, folder: Path, budget: int,
                known: dict[int, Attempt]) -> tuple[int | None, dict[int, Attempt]]:
    attempts: dict[int, Attempt] = dict(known)

    def passes(k: int) -> bool:
        attempts[k] = export(kept_units(order[:k]), folder / f"keep{k}", None)
        return attempts[k].passed
    found = smallest_passing_prefix(len(order), passes, budget + len(known),
                                    {k: a.passed for k, a in known.items()}) if order else None
    return found, attempts


def _probed(orderings: list[tuple[str, list[UnitBlame]]], export: Exporting,
            scratch: Path) -> list[tuple[str, list[UnitBlame], dict[int, Attempt]]]:
    """Each ordering tried once at PROBE_UNITS, best first: blame order suits a broken layer, graph order error
    that accumulates, and which one a network has is read off the artifact, not guessed."""
    probed = []
    for rank, (label, order) in enumerate(orderings):
        k = min(PROBE_UNITS, len(order))
        known = {k: export(kept_units(order[:k]), scratch / label.replace(" ", "-") / f"keep{k}", None)} if k else {}
        db = next((a.evaluation.report.gated_db for a in known.values() if a.evaluation is not None), None)
        probed.append((-(db if db is not None else -math.inf), rank, label, order, known))
    return [(label, order, known) for _, _, label, order, known in sorted(probed, key=lambda t: t[:2])]


def search_precision(p: Prepared, job: Job, variant: Variant, fp32: ArtifactOutcome | None, base: Attempt,
                     export: Exporting, work: Path) -> tuple[Attempt, PrecisionSearch]:
    """The attempt to ship (its files moved into `work`) and what the search did."""
    import tempfile
    from pathlib import Path

    report = base.evaluation.report
    base_bytes = base.record.total_bytes
    worst = report.gated_db
    before = {"before_db": db_for_json(worst)}
    if report.passed:
        return base, PrecisionSearch("not-needed", f"passes its gate with every layer at "
                                     f"{job.recipe.export_precision}", base_bytes=base_bytes, final_bytes=base_bytes,
                                     extra=before)
    if report.status == "error":
        return base, PrecisionSearch("cannot-search", f"the runtime could not run the artifact: {report.message}")
    with tempfile.TemporaryDirectory(prefix=".search-", dir=p.model_dir) as tmp:
        scratch = Path(tmp)
        try:
            orderings, engine, kind = _rank(p, job, variant, fp32, base, export, scratch)
        except Exception as exc:   # the search explains; it never hides the row's own verdict
            return base, PrecisionSearch("cannot-search", f"could not rank layers: {str(exc)[:240]}")
        probed = _probed(orderings, export, scratch)
        trials: list[SearchTrial] = [_trial(k, a, label) for label, _, known in probed for k, a in known.items()]
        for label, order, known in probed:
            found, attempts = _search_one(order, export, scratch / label.replace(" ", "-"), MAX_TRIALS - len(trials),
                                          known)
            trials += [_trial(k, a, label) for k, a in attempts.items() if k not in known]
            if found is not None:
                _adopt(attempts[found].folder, work)
                chosen = Attempt(work, attempts[found].record, attempts[found].evaluation,
                                 seconds=attempts[found].seconds)
                return chosen, PrecisionSearch("passed", f"{found} ranked units kept ({label})", kind, engine,
                                               len(order), tuple(order[:found]), tuple(trials),
                                               tuple(order[:TOP_SHOWN]), base_bytes, chosen.record.total_bytes,
                                               {"ordering": label, **before})
            if len(trials) >= MAX_TRIALS:
                break
    best = max((t.gated_db for t in trials if t.gated_db is not None), default=None)
    tried = " then ".join(label for label, _, _ in probed)
    why = (f"keeping every ranked unit ({tried}) still misses the gate" if len(trials) < MAX_TRIALS
           else f"no passing prefix within {MAX_TRIALS} trials ({tried})")
    return base, PrecisionSearch("not-saved", f"not saved: {why} (best {'-' if best is None else round(best, 1)} dB)",
                                 kind, engine, len(orderings[0][1]), (), tuple(trials),
                                 tuple(by_blame_head(orderings)), base_bytes, base_bytes, before)


def by_blame_head(orderings: list[tuple[str, list[UnitBlame]]]) -> list[UnitBlame]:
    return next((order for label, order in orderings if label == "blame"), [])[:TOP_SHOWN]
