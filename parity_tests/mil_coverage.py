"""Which MIL ops the Core ML converter emits for the op corpus, and whether edgeport's MIL evaluator runs each
one as PyTorch computes it.

The op list is derived, not written down: every case of models/corpus/ops.py goes through edgeport's own Core ML
exporter (torch.export -> coremltools, fp32 and fp16 compute precision) and the saved program's ops are read
back. A case the converter refuses is a row with the converter's words; an op the evaluator lacks is a row that
names it. Running the cases is separate from judging them (judge_case), as in Polygraphy.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from edgeport.exporters.base import ExportError, ExportRequest
from edgeport.exporters.coreml_exporter import CoreMLExporter
from edgeport.models.corpus.ops import CONVERTER_UNFAITHFUL, DISCRETE, build_case, op_input
from edgeport.parity_tests.metrics import compare, format_db
from edgeport.quantize import coreml_recipes  # noqa: F401  (registers the Core ML fp16 step)
from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program
from edgeport.runtimes.mil.registry import MIL_OPS, MilEvalError

if TYPE_CHECKING:
    from coremltools.converters.mil.mil import Program

    from edgeport.models.corpus.ops import OpCase

PRECISIONS = ("fp32", "fp16")
# What a case must reach against PyTorch (PSNR over the reference's range): fp32 programs compute in float32
# like PyTorch, so anything short of this is a wrong op; fp16 programs round every value to 11 significant bits.
MIN_DB = {"fp32": 80.0, "fp16": 40.0}
# Outputs that are indices must be exact (at fp16 against PyTorch given the fp16-rounded input: DISCRETE).
INDEX_CASES = {"argmax", "argmin", "max_indices", "topk_indices", "argsort"}


@dataclass(frozen=True)
class OpCaseResult:
    case: str
    group: str
    precision: str
    mil_ops: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()            # ops the evaluator does not implement
    # each op input as the program holds it: "concat.interleave=True", "clip.alpha=int32 scalar", "pad.x=fp32"
    attributes: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()           # every input the emitted ops take (coremltools' op definitions)
    converter_error: str | None = None       # coremltools refused the case
    psnr_db: float | None = None             # None: not evaluated; inf: bit-exact
    max_abs: float | None = None
    evaluator_error: str | None = None

    @property
    def converted(self) -> bool:
        return self.converter_error is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["psnr_db"] = "exact" if self.psnr_db == math.inf else self.psnr_db
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OpCaseResult":
        psnr = math.inf if d.get("psnr_db") == "exact" else d.get("psnr_db")
        return cls(**{**d, "mil_ops": tuple(d.get("mil_ops", ())), "missing": tuple(d.get("missing", ())),
                      "psnr_db": psnr})


@dataclass(frozen=True)
class CoverageReport:
    versions: dict[str, str]
    results: tuple[OpCaseResult, ...]
    implemented: tuple[str, ...] = field(default=())   # the evaluator's registry when the report was made

    def emitted(self) -> dict[str, list[str]]:
        """MIL op -> the cases (name@precision) whose program contains it."""
        ops: dict[str, list[str]] = {}
        for r in self.results:
            for op in r.mil_ops:
                ops.setdefault(op, []).append(f"{r.case}@{r.precision}")
        return dict(sorted(ops.items()))

    def uncovered(self) -> list[str]:
        return [op for op in self.emitted() if op not in self.implemented]

    def attribute_variants(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """op -> the input variants any converted case emitted, and those of cases that pass their bar."""
        emitted: dict[str, set[str]] = {}
        passed: dict[str, set[str]] = {}
        for r in self.results:
            for variant in r.attributes:
                op = variant.split(".", 1)[0]
                emitted.setdefault(op, set()).add(variant)
                if r.converted and judge_case(r) is None:
                    passed.setdefault(op, set()).add(variant)
        return emitted, passed

    def declared_inputs(self) -> dict[str, set[str]]:
        """op -> every input its coremltools definition takes (what a corpus could vary)."""
        out: dict[str, set[str]] = {}
        for r in self.results:
            for item in r.declared:
                op, name = item.split(".", 1)
                out.setdefault(op, set()).add(name)
        return out

    def coverage_percent(self) -> float:
        emitted = self.emitted()
        return 100.0 * (len(emitted) - len(self.uncovered())) / max(len(emitted), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "implemented": list(self.implemented),
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CoverageReport":
        return cls(dict(d["versions"]), tuple(OpCaseResult.from_dict(r) for r in d["results"]),
                   tuple(d.get("implemented", ())))


def judge_case(result: OpCaseResult) -> str | None:
    """Why a converted case fails the evaluator's bar, or None when it passes (refused cases are not judged).
    A case the converter is known to change (CONVERTER_UNFAITHFUL) must still differ from PyTorch."""
    if not result.converted:
        return None
    if result.missing:
        return f"evaluator lacks {', '.join(result.missing)}"
    if result.evaluator_error or result.psnr_db is None:
        return result.evaluator_error or "not evaluated"
    bar = MIN_DB[result.precision]
    if result.case in CONVERTER_UNFAITHFUL:
        return None if result.psnr_db < bar else "now matches PyTorch: remove it from CONVERTER_UNFAITHFUL"
    if result.case in INDEX_CASES and result.max_abs != 0:
        return f"indices differ from PyTorch's (max difference {result.max_abs})"
    return f"{result.psnr_db:.1f} dB < {bar:.0f} dB" if result.psnr_db < bar else None


class CaseBundle(nn.Module):
    """Several cases as one module with one output each: one conversion for the whole corpus (the test)."""
    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.cases = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(case(x) for case in self.cases)


def convert(module: nn.Module, x: torch.Tensor, precision: str, work_dir: Path) -> Program:
    """Export with edgeport's Core ML exporter (one input x, outputs y0, y1, ...); the saved MIL program."""
    with torch.no_grad():
        out = module(x)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    request = ExportRequest(module=module, example_inputs=(x,), input_names=("x",),
                            output_names=tuple(f"y{i}" for i in range(len(outs))),
                            output_shapes=tuple(tuple(o.shape) for o in outs), precision=precision,
                            work_dir=work_dir, stem="case")
    CoreMLExporter().export(request)
    return load_mil_program(work_dir / "case.mlpackage")


def reference(case: OpCase, module: nn.Module, x: torch.Tensor, precision: str) -> np.ndarray:
    """PyTorch's output; for a step function at fp16, given the input as the program holds it (DISCRETE)."""
    seen = x.half().float() if precision == "fp16" and case.name in DISCRETE else x
    with torch.no_grad():
        return module(seen).numpy()


def program_ops(program: Program) -> tuple[str, ...]:
    return tuple(sorted({op.op_type for op in program.functions["main"].operations} - {"const"}))


def _variant(var: object) -> str:
    """How one op input appears: a constant bool or string by value, a scalar by dtype, a tensor by dtype (and
    'const' when it is one): the distinctions that made the evaluator or the converter differ before."""
    from coremltools.converters.mil.mil import types

    if isinstance(var, (list, tuple)):
        return "list of " + (_variant(var[0]) if var else "nothing")
    dtype = types.builtin_to_string(var.dtype) if getattr(var, "dtype", None) is not None else "?"
    value = getattr(var, "val", None)
    if value is None:
        return dtype
    if np.ndim(value) == 0 and isinstance(value.item() if hasattr(value, "item") else value, (bool, str)):
        return str(value.item() if hasattr(value, "item") else value)
    return f"{dtype} scalar" if np.ndim(value) == 0 else f"const {dtype} rank {np.ndim(value)}"


def program_attributes(program: Program) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(each op input's variant as "op.input=variant", every input each emitted op declares as "op.input")."""
    seen, declared = set(), set()
    for op in program.functions["main"].operations:
        if op.op_type == "const":
            continue
        declared |= {f"{op.op_type}.{name}" for name in op.input_spec.input_types}
        seen |= {f"{op.op_type}.{name}={_variant(var)}" for name, var in op.inputs.items()}
    return tuple(sorted(seen)), tuple(sorted(declared))


def evaluate(program: Program, x: np.ndarray, references: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    """(PSNR, largest difference) per output, the program run by the MIL evaluator."""
    evaluator = MilEvaluator(program)
    got = evaluator.run({"x": x})
    outputs = [v.name for v in program.functions["main"].outputs]
    metrics = [compare(ref, got[name]) for ref, name in zip(references, outputs)]
    return [(m.psnr_db, m.max_abs) for m in metrics]


def run_case(case: OpCase, precision: str, root: Path) -> OpCaseResult:
    """One corpus case converted on its own: its ops, and its parity where the evaluator has them all."""
    base = OpCaseResult(case.name, case.group, precision)
    x = op_input()
    module = build_case(case)
    with tempfile.TemporaryDirectory(dir=root) as work:
        try:
            program = convert(module, x, precision, Path(work))
        except ExportError as exc:
            return replace(base, converter_error=str(exc))
        ops = program_ops(program)
        missing = tuple(op for op in ops if op not in MIL_OPS)
        attributes, declared = program_attributes(program)
        base = replace(base, mil_ops=ops, missing=missing, attributes=attributes, declared=declared)
        if missing:
            return base
        try:
            (psnr, max_abs), = evaluate(program, x.numpy(), [reference(case, module, x, precision)])
        except MilEvalError as exc:
            return replace(base, evaluator_error=str(exc))
    return replace(base, psnr_db=psnr, max_abs=max_abs)


def coverage_report(cases: Iterable[OpCase], precisions: Sequence[str] = PRECISIONS,
                    progress: Callable[[str], None] = lambda line: None, root: Path | None = None) -> CoverageReport:
    import coremltools as ct

    results = []
    work_root = Path(root or tempfile.gettempdir())
    for case in cases:
        for precision in precisions:
            result = run_case(case, precision, work_root)
            progress(f"{case.name}@{precision}: {', '.join(result.mil_ops) or result.converter_error}")
            results.append(result)
    versions = {"torch": torch.__version__, "coremltools": ct.__version__}
    return CoverageReport(versions, tuple(results), tuple(sorted(MIL_OPS)))


def refusal_drift(report: CoverageReport, expected: Mapping[str, str]) -> list[str]:
    """Cases whose converter verdict differs from models/corpus/ops.py's CONVERTER_REFUSES."""
    refused = {r.case for r in report.results if not r.converted}
    run = {r.case for r in report.results}
    drift = [f"{c}: coremltools now converts it (remove it from CONVERTER_REFUSES)" for c in expected
             if c in run and c not in refused]
    drift += [f"{c}: coremltools refuses it, and CONVERTER_REFUSES does not say so" for c in sorted(refused)
              if c not in expected]
    return drift


def coverage_markdown(report: CoverageReport) -> str:
    """README's table: each MIL op the corpus emits, the cases that emit it, and whether the evaluator runs it."""
    emitted = report.emitted()
    lines = [f"{len(emitted)} MIL ops emitted by {len({r.case for r in report.results if r.converted})} converted "
             f"cases at fp32 and fp16 ({', '.join(f'{k} {v}' for k, v in report.versions.items())}); "
             f"the evaluator implements {len(emitted) - len(report.uncovered())} of them "
             f"({report.coverage_percent():.0f}%).", "",
             "| MIL op | emitted by (corpus cases) | evaluator |", "|---|---|---|"]
    for op, where in emitted.items():
        cases = sorted({w.split("@")[0] for w in where})
        shown = ", ".join(cases[:6]) + (f" and {len(cases) - 6} more" if len(cases) > 6 else "")
        only = {w.split("@")[1] for w in where}
        note = f" (at {only.pop()} only)" if len(only) == 1 else ""
        lines.append(f"| `{op}` | {shown}{note} | {'yes' if op in report.implemented else '**missing**'} |")
    return "\n".join(lines) + "\n\n" + attributes_markdown(report)


def attributes_markdown(report: CoverageReport) -> str:
    """Per emitted op: the inputs its definition takes, the variants the corpus emitted, those that pass."""
    emitted, passed = report.attribute_variants()
    declared = report.declared_inputs()
    total = sum(len(v) for v in emitted.values())
    ok = sum(len(passed.get(op, set()) & v) for op, v in emitted.items())
    never = sum(len(declared.get(op, set()) - {v.split(".", 1)[1].split("=")[0] for v in variants})
                for op, variants in emitted.items())
    lines = [f"Attributes: {ok} of {total} input variants the corpus makes the converter emit run as PyTorch "
             f"computes them ({ok / max(total, 1):.0%}); {never} inputs the emitted ops declare (coremltools' op "
             f"definitions) are never given, so only their defaults are exercised.", "",
             "| MIL op | variants emitted | in failing cases | declared, never given |", "|---|---|---|---|"]
    for op in sorted(emitted):
        failing = sorted(v.split(".", 1)[1] for v in emitted[op] - passed.get(op, set()))
        shown = sorted(v.split(".", 1)[1] for v in emitted[op])
        given = {v.split("=")[0] for v in shown}
        unused = sorted(declared.get(op, set()) - given)
        lines.append(f"| `{op}` | {', '.join(shown)} | {', '.join(failing) or '-'} | {', '.join(unused) or '-'} |")
    return "\n".join(lines) + "\n"


def cases_markdown(report: CoverageReport) -> str:
    """Per case and precision: the worst parity, or why it was not judged."""
    rows = ["| case | group | fp32 | fp16 |", "|---|---|---|---|"]
    by_case: dict[str, dict[str, OpCaseResult]] = {}
    for r in report.results:
        by_case.setdefault(r.case, {})[r.precision] = r
    for case, runs in by_case.items():
        cells = []
        for precision in PRECISIONS:
            r = runs.get(precision)
            if r is None:
                cells.append("-")
            elif not r.converted:
                cells.append("converter refuses")
            else:
                verdict = judge_case(r)
                cells.append(f"{format_db(r.psnr_db)}" + (f" FAIL: {verdict}" if verdict else ""))
        group = next(iter(runs.values())).group
        rows.append(f"| {case} | {group} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) + "\n"
