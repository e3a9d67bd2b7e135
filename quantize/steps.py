"""(format, recipe) -> the step that applies it: one registry, filled by each format's recipe module.

A step's stage says where in the format's export it acts: "convert" steps are options of the conversion
itself (Core ML's compute precision, a PT2E-quantized module handed to the converter), "artifact" steps
rewrite the converted fp32 artifact with the format's own tooling. fp32 needs no step and every format has
it. What `apply` takes is the format's business: its exporter is the one caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from edgeport.quantize.recipes import FAMILIES, RECIPES, RecipeError


@dataclass(frozen=True)
class RecipeStep:
    format: str
    precision: str
    stage: str                                   # "convert" or "artifact"
    tool: str                                    # what does the work, for the manifest
    apply: Callable[..., Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # what `keep` names when this step leaves units at higher precision ("" when it cannot): "artifact" units
    # are read off the artifact's own tensors (ONNX nodes, MIL ops, TFLite tensors), "torch" units are
    # modules of the PT2E program (quantize/pt2e.py)
    keeps: str = ""


STEPS: dict[tuple[str, str], RecipeStep] = {}
FP32 = RecipeStep("*", "fp32", "convert", "the format's converter at float32")


def register_step(fmt: str, precision: str, stage: str, tool: str, keeps: str = "",
                  **options: Any) -> Callable[[Callable[..., Any] | None], Callable[..., Any] | None]:
    """Decorator; refuses a second step for one (format, precision) and a precision no recipe exports."""
    if stage not in ("convert", "artifact"):
        raise ValueError(f"unknown stage {stage!r}")
    if keeps not in ("", "artifact", "torch"):
        raise ValueError(f"unknown unit source {keeps!r}")

    def wrap(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if (fmt, precision) in STEPS:
            raise RuntimeError(f"{fmt} already has a step for {precision}")
        if precision not in _exported_precisions():
            raise RuntimeError(f"no recipe exports {precision!r}; register the recipe first")
        STEPS[(fmt, precision)] = RecipeStep(fmt, precision, stage, tool, fn, dict(options), keeps)
        return fn
    return wrap


def _exported_precisions() -> set[str]:
    return {r.export_precision for r in RECIPES.values()} | {build(50).export_precision for _, build in FAMILIES.values()}


def declare_step(fmt: str, precision: str, tool: str, keeps: str = "", **options: Any) -> None:
    """A convert-stage step with nothing to call (the exporter reads its options)."""
    register_step(fmt, precision, "convert", tool, keeps, **options)(None)


def step_for(fmt: str, precision: str) -> RecipeStep:
    if precision == "fp32":
        return FP32
    if (fmt, precision) not in STEPS:
        raise RecipeError(f"{fmt} has no step for {precision}")
    return STEPS[(fmt, precision)]


def precisions_for(fmt: str) -> tuple[str, ...]:
    return ("fp32", *(p for f, p in STEPS if f == fmt))
