"""Compression recipes by name: one registry entry each, carrying its kind and gate.

Two kinds. A *precision* recipe (fp16, w8, w8a8, palettize4/6) is applied by each format's own tooling; the
(format, recipe) -> step registry in quantize/steps.py says which formats have it, and a format without it
gets an "unsupported" row. A *module* recipe (prune<N>, sparse<N>) rewrites the PyTorch model before export;
the artifact is then judged against that rewritten model, because pruning without fine-tuning changes what
the model computes on purpose. prune<N>+<precision> does both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Mapping

from edgeport.models.spec import ParityGate


class RecipeError(ValueError):
    """A recipe name that does not parse, or one that cannot be applied; the message says which and why."""


@dataclass(frozen=True)
class Recipe:
    name: str
    kind: str                  # "precision" or "module"
    summary: str
    gate_db: float             # worst-sample PSNR against the PyTorch model it was exported from
    export_precision: str      # what each format's tooling is asked for (prune<N> exports fp32)
    needs_calibration: bool = False
    int8: bool = False         # int8 arithmetic at run time (benchmarks compare it with the int8 peak)
    prune_percent: int = 0     # prune<N>: share of MACs to remove by dropping whole channels
    sparsity_percent: int = 0  # sparse<N>: share of each layer's weights set to zero
    # which parity samples gate (models.spec.ParityGate.samples): "photos" for recipes whose error depends
    # on the data (calibrated or lossy weights), "all" for conversion fidelity
    gated_samples: str = "all"
    # <precision>+auto: when the artifact misses its gate, keep the fewest layers at higher precision that make
    # it pass (edgeport/export/precision_search.py)
    auto: bool = False
    # prune<N>+recover: the pruned model distilled from the unpruned one before export (quantize/recover.py)
    recover: bool = False

    @property
    def module_part(self) -> str:
        """The PyTorch rewrite this recipe starts from ('' for none): prune50+w8a8 and prune50 share one."""
        if self.kind != "module":
            return ""
        return self.name.partition("+")[0] + ("+recover" if self.recover else "")

    def gate(self, overrides: Mapping[str, ParityGate]) -> ParityGate:
        """A spec may override a recipe's gate by the precision's name (prune50+w8a8 uses w8a8's)."""
        key = self.export_precision if self.kind == "precision" or "+" in self.name else "fp32"
        override = overrides.get(key)
        if override is None:
            return ParityGate(self.gate_db, samples=self.gated_samples)
        return replace(override, samples=self.gated_samples)


RECIPES: dict[str, Recipe] = {}
# name pattern -> builder, for the families with a number in the name (prune50, sparse75)
FAMILIES: dict[str, tuple[re.Pattern, Callable[[int], Recipe]]] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise RuntimeError(f"recipe {recipe.name!r} is registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


def register_family(stem: str, build: Callable[[int], Recipe]) -> None:
    if stem in FAMILIES:
        raise RuntimeError(f"recipe family {stem}<N> is registered twice")
    FAMILIES[stem] = (re.compile(rf"{stem}(\d{{1,2}})"), build)


register_recipe(Recipe("fp32", "precision", "float32 weights and compute", 60.0, "fp32"))
register_recipe(Recipe("fp16", "precision", "float16 weights (and compute where the runtime does it)", 40.0, "fp16"))
register_recipe(Recipe("w8", "precision", "int8 weights per output channel, float activations", 35.0, "w8",
                       int8=True, gated_samples="photos"))
register_recipe(Recipe("w8a8", "precision", "int8 weights per channel and int8 activations, calibrated on photos",
                       30.0, "w8a8", needs_calibration=True, int8=True, gated_samples="photos"))
register_recipe(Recipe("w8a8+qat", "precision", "int8 weights and activations, fine-tuned with fake quantization "
                       "(distilled from the float model on the calibration photos)", 30.0, "w8a8-qat",
                       needs_calibration=True, int8=True, gated_samples="photos"))
register_recipe(Recipe("palettize4", "precision", "4-bit k-means palette of weights (16 values per tensor)", 25.0,
                       "palettize4", gated_samples="photos"))
register_recipe(Recipe("palettize6", "precision", "6-bit k-means palette of weights (64 values per tensor)", 30.0,
                       "palettize6", gated_samples="photos"))
register_family("prune", lambda n: Recipe(
    f"prune{n}", "module", f"structured: whole conv channels with the lowest L2 norm removed until {n}% of the "
    "MACs are gone", 60.0, "fp32", prune_percent=n))
register_family("sparse", lambda n: Recipe(
    f"sparse{n}", "module", f"unstructured: the {n}% smallest-magnitude weights of each conv set to zero, stored "
    "sparse", 60.0, "sparse", sparsity_percent=n))


# precisions whose formats can keep chosen layers at higher precision (quantize/steps.py, RecipeStep.keeps)
SEARCHABLE = ("fp16", "w8", "w8a8")


def recipe_names() -> str:
    """For help texts and error messages."""
    return ", ".join([*RECIPES, *(f"{p}+auto" for p in SEARCHABLE), *(f"{stem}<N>" for stem in FAMILIES),
                      "prune<N>+<precision>", "prune<N>+recover[+<precision>]"])


def parse_recipe(name: str) -> Recipe:
    name = name.strip().lower()
    if name in RECIPES:
        return RECIPES[name]
    if "+" in name:
        return _combined(name)
    for pattern, build in FAMILIES.values():
        match = pattern.fullmatch(name)
        if match and 0 < int(match.group(1)) < 100:
            return build(int(match.group(1)))
    raise RecipeError(f"unknown recipe {name!r}; recipes: {recipe_names()} (N from 1 to 99, e.g. prune50)")


def _searched(precision: Recipe) -> Recipe:
    if precision.name not in SEARCHABLE:
        raise RecipeError(f"cannot search {precision.name}+auto: mixed precision applies to "
                          f"{', '.join(SEARCHABLE)} (e.g. fp16+auto)")
    return replace(precision, name=f"{precision.name}+auto", auto=True,
                   summary=f"{precision.summary}; layers that break the gate kept at higher precision, fewest found "
                   "by search")


def _recovered(module: Recipe, then: str) -> Recipe:
    """prune<N>+recover[+<precision>]: pruned, distilled from the unpruned model, then that precision."""
    if not module.prune_percent or module.kind != "module" or "+" in module.name:
        raise RecipeError(f"recover follows a prune<N> recipe (e.g. prune50+recover), not {module.name!r}")
    summary = f"{module.summary}; then distilled from the unpruned model on the calibration photos"
    recovered = replace(module, name=f"{module.name}+recover", summary=summary, recover=True, needs_calibration=True)
    if not then:
        return recovered
    precision = parse_recipe(then)
    if precision.kind != "precision":
        raise RecipeError(f"prune<N>+recover+ takes a precision ({', '.join(RECIPES)}), not {then!r}")
    return replace(precision, name=f"{recovered.name}+{precision.name}", kind="module",
                   summary=f"{summary}; then {precision.summary}", prune_percent=module.prune_percent, recover=True,
                   needs_calibration=True)


def _combined(name: str) -> Recipe:
    """<precision>+auto: the precision with a mixed-precision search; prune<N>+<precision>[+auto]: the pruned
    model, then the format's own compression (e.g. prune50+w8a8)."""
    first, _, second = name.partition("+")
    if second == "auto":
        return _searched(parse_recipe(first))
    if second.partition("+")[0] == "recover":
        return _recovered(parse_recipe(first), second.partition("+")[2])
    module, precision = parse_recipe(first), parse_recipe(second)
    if not module.prune_percent or precision.kind != "precision" or ("+" in second and not precision.auto):
        raise RecipeError(f"cannot combine {name!r}: a combination is prune<N>+ one of "
                          f"{', '.join(RECIPES)} (e.g. prune50+w8a8)")
    return replace(precision, name=name, kind="module", summary=f"{module.summary}; then {precision.summary}",
                   prune_percent=module.prune_percent)


def parse_recipes(text: str) -> tuple[Recipe, ...]:
    names = [n for n in (part.strip() for part in text.split(",")) if n]
    if not names:
        raise RecipeError("no recipe given; e.g. --recipe fp32,fp16,w8,w8a8")
    recipes = tuple(parse_recipe(n) for n in names)
    return tuple({r.name: r for r in recipes}.values())   # keep order, drop repeats
