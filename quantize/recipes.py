"""Compression recipes by name: what each one does, and which step of the flow applies it.

Two kinds. A *precision* recipe (fp16, w8, w8a8, palettize4/6) is applied by each format's own tooling inside
its exporter, and a format that lacks it says so. A *module* recipe (prune<N>, sparse<N>) rewrites the
PyTorch model before export; the artifact is then judged against that rewritten model, because pruning
without fine-tuning changes what the model computes on purpose. prune<N>+<precision> does both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class RecipeError(ValueError):
    """A recipe name that does not parse; the message lists the valid ones."""


@dataclass(frozen=True)
class Recipe:
    name: str
    kind: str                  # "precision" or "module"
    summary: str
    export_precision: str      # what the exporter is asked for: prune<N> exports fp32; sparse<N> asks for
                               # "sparse" storage, which only Core ML has
    needs_calibration: bool = False
    prune_percent: int = 0     # prune<N>: share of MACs to remove by dropping whole channels
    sparsity_percent: int = 0  # sparse<N>: share of each layer's weights set to zero (Core ML stores them sparse)

    @property
    def gate_name(self) -> str:
        """Whose gate applies: prune50+w8a8 is held to w8a8's bound (against the pruned model)."""
        return self.name.partition("+")[2] or self.name

    @property
    def module_part(self) -> str:
        """The PyTorch rewrite this recipe starts from ('' for none): prune50+w8a8 and prune50 share one."""
        return self.name.partition("+")[0] if self.kind == "module" else ""


PRECISION_RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("fp32", "precision", "float32 weights and compute", "fp32"),
    Recipe("fp16", "precision", "float16 weights (and compute where the runtime does it)", "fp16"),
    Recipe("w8", "precision", "int8 weights per output channel, float activations", "w8"),
    Recipe("w8a8", "precision", "int8 weights per channel and int8 activations, calibrated on photos",
           "w8a8", needs_calibration=True),
    Recipe("palettize4", "precision", "4-bit k-means palette of weights (16 values per tensor)", "palettize4"),
    Recipe("palettize6", "precision", "6-bit k-means palette of weights (64 values per tensor)", "palettize6"),
)}

_MODULE_PATTERNS = {
    "prune": (re.compile(r"prune(\d{1,2})"),
              "structured: whole conv channels with the lowest L2 norm removed until {n}% of the MACs are gone"),
    "sparse": (re.compile(r"sparse(\d{1,2})"),
               "unstructured: the {n}% smallest-magnitude weights of each conv set to zero, stored sparse"),
}


def parse_recipe(name: str) -> Recipe:
    name = name.strip().lower()
    if "+" in name:
        return _combined(name)
    if name in PRECISION_RECIPES:
        return PRECISION_RECIPES[name]
    for kind, (pattern, summary) in _MODULE_PATTERNS.items():
        match = pattern.fullmatch(name)
        if match and 0 < int(match.group(1)) < 100:
            n = int(match.group(1))
            return Recipe(name, "module", summary.format(n=n), "sparse" if kind == "sparse" else "fp32",
                          prune_percent=n if kind == "prune" else 0, sparsity_percent=n if kind == "sparse" else 0)
    raise RecipeError(f"unknown recipe {name!r}; recipes: {', '.join(PRECISION_RECIPES)}, prune<N>, sparse<N> "
                      "(N from 1 to 99, e.g. prune50)")


def _combined(name: str) -> Recipe:
    """prune<N>+<precision>: the pruned model, then the format's own compression (e.g. prune50+w8a8)."""
    first, _, second = name.partition("+")
    module, precision = parse_recipe(first), parse_recipe(second)
    if not module.prune_percent or precision.kind != "precision" or "+" in second:
        raise RecipeError(f"cannot combine {name!r}: a combination is prune<N>+ one of "
                          f"{', '.join(PRECISION_RECIPES)} (e.g. prune50+w8a8)")
    return Recipe(name, "module", f"{module.summary}; then {precision.summary}", precision.export_precision,
                  needs_calibration=precision.needs_calibration, prune_percent=module.prune_percent)


def parse_recipes(text: str) -> tuple[Recipe, ...]:
    names = [n for n in (part.strip() for part in text.split(",")) if n]
    if not names:
        raise RecipeError("no recipe given; e.g. --recipe fp32,fp16,w8,w8a8")
    recipes = tuple(parse_recipe(n) for n in names)
    return tuple({r.name: r for r in recipes}.values())   # keep order, drop repeats
