"""Everything an export needs before it writes a byte: input checked, model built, PyTorch's outputs taken.

Bad input (unknown format, recipe, model or setting, an input size the model refuses, unreadable weights or
calibration photos, an output folder that cannot be written) raises here, so nothing is left behind.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from edgeport.export.plan import ExportPlan
from edgeport.exporters.base import ExportError, short_message
from edgeport.exporters.formats import get_format
from edgeport.exporters.image_io import IO_MODES
from edgeport.models import ModelError, get_spec
from edgeport.models.source import instantiate, resolve_inputs, source_for
from edgeport.models.spec import is_noise_sample
from edgeport.models.team_photos import LABEL_PREFIX, parity_samples, read_photo_set
from edgeport.parity_tests.gate import versus_outputs
from edgeport.parity_tests.reference import torch_outputs
from edgeport.quantize.calibration import calibration_set
from edgeport.quantize.pt2e import as_batches
from edgeport.quantize.recipes import RecipeError, parse_recipe, parse_recipes
from edgeport.runtimes.atomic import check_writable, ensure_writable
from edgeport.runtimes.json_numbers import db_for_json

if TYPE_CHECKING:
    from torch import nn

    from edgeport.exporters.formats import Format
    from edgeport.models.profile import ModelProfile
    from edgeport.models.source import ModelSource
    from edgeport.models.spec import ModelSpec, TensorContract
    from edgeport.models.team_photos import PhotoSet
    from edgeport.progress import Progress
    from edgeport.quantize.calibration import CalibrationSet
    from edgeport.quantize.recipes import Recipe
    from edgeport.quantize.variants import ModuleVariant


@dataclass(frozen=True)
class Job:
    format: Format
    recipe: Recipe


@dataclass(frozen=True)
class Variant:
    """The module one recipe exports, with its PyTorch outputs on the parity inputs."""
    module: nn.Module
    references: list
    profile: ModelProfile
    details: Mapping[str, Any]
    warning: str = ""


@dataclass(frozen=True)
class Prepared:
    spec: ModelSpec
    contracts: tuple[TensorContract, ...]
    source: ModelSource
    samples: list
    base: Variant
    output_shapes: tuple[tuple[int, ...], ...]
    calibration: CalibrationSet
    jobs: tuple[Job, ...]
    model_dir: Path
    plan: ExportPlan
    photo_set: PhotoSet | None = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.contracts)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.spec.outputs)

    def example(self) -> tuple:
        """The first parity sample as freshly laid-out torch tensors: a numpy array can carry a zero stride on a
        size-1 dimension (the segmenter's click maps), which torch.export records and ExecuTorch refuses."""
        import torch

        arrays = [self.samples[0].arrays[n] for n in self.input_names]
        return tuple(torch.empty(a.shape, dtype=torch.from_numpy(a).dtype).copy_(torch.from_numpy(a)) for a in arrays)


def plan_jobs(formats: tuple[str, ...], recipes: tuple[str, ...] | None) -> tuple[Job, ...]:
    """Each format's recipes, fp32 first so the others can be compared with it. Unknown names raise."""
    chosen = parse_recipes(",".join(recipes)) if recipes else None
    jobs = []
    for fmt in (get_format(name) for name in formats):
        mine = chosen or tuple(parse_recipe(p) for p in fmt.default_recipes)
        jobs += [Job(fmt, r) for r in sorted(mine, key=lambda r: r.name != "fp32")]
    return tuple(jobs)


def check_output_shapes(spec: ModelSpec, contracts: tuple[TensorContract, ...], measured: tuple, config: Mapping[str, Any]) -> None:
    """A spec declares its outputs at its default input: there they must match PyTorch's exactly; at another
    size, batch and channels must. Settings (--set) may change both, and custom specs measure their own."""
    if config or spec.reference:
        return
    default_size = tuple(c.shape for c in contracts) == tuple(c.shape for c in spec.inputs)
    for declared, got in zip(spec.outputs, measured):
        want, got = tuple(declared.shape), tuple(got)
        same = want == got if default_size else (len(want) == len(got) and want[:2] == got[:2])
        if not same:
            raise ModelError(f"{spec.name}: PyTorch's output {declared.name} is {got}, the spec declares {want}"
                             f"{'' if default_size else ' (batch and channels)'}: the spec or the model is wrong")


def _references(spec: ModelSpec, module: nn.Module, samples: list, contracts: tuple[TensorContract, ...]) -> list:
    try:
        return torch_outputs(module, samples, [c.name for c in contracts], [c.name for c in spec.outputs])
    except Exception as exc:
        shapes = ", ".join("x".join(map(str, c.shape)) for c in contracts)
        raise ModelError(f"{spec.name} rejects input {shapes}: {short_message(exc)}") from None


def prepare(plan: ExportPlan, progress: Progress) -> Prepared:
    """Raises ModelError / ExportError / OutputError / RecipeError for bad input before anything is written."""
    from edgeport.models.profile import profile_model

    if plan.io not in IO_MODES:
        raise ExportError(f"io must be one of {', '.join(IO_MODES)}, not {plan.io!r}")
    jobs = plan_jobs(plan.formats, plan.recipes)
    spec = plan.spec or get_spec(plan.model, list(plan.input_shapes))
    spec.check_config(plan.config)
    contracts = resolve_inputs(spec, plan.input_hw, plan.config)
    photo_set = (read_photo_set(plan.photos_dir, "resize" if spec.photo.mode == "resize" else "crop")
                 if plan.photos_dir else None)   # a bad --photos folder fails here
    check_writable(plan.out_root)
    progress.total = 2 + len(jobs)
    with progress.step(f"{spec.name}: build model"):
        source = source_for(spec, plan.config, plan.weights, plan.seed)
        module = instantiate(spec, source, contracts)
    with progress.step(f"{spec.name}: PyTorch reference"):
        samples = parity_samples(spec, contracts, plan.parity_seed, photo_set)
        references = _references(spec, module, samples, contracts)
        profile = profile_model(lambda: spec.build(**plan.config), [c.shape for c in contracts])
    output_shapes = tuple(tuple(references[0][c.name].shape) for c in spec.outputs)
    check_output_shapes(spec, contracts, output_shapes, plan.config)
    calibration = (calibration_set(spec, contracts, plan.calib_dir, plan.parity_seed)
                   if any(j.recipe.needs_calibration for j in jobs) else None)   # a bad --calib fails here
    ensure_writable(plan.out_root)          # only now: bad input above leaves nothing behind
    return Prepared(spec, contracts, source, samples, Variant(module, references, profile, {}), output_shapes,
                    calibration, jobs, plan.out_root / spec.name, plan, photo_set)


class VariantCache:
    """The rewritten model of each module recipe, built once: prune50 and prune50+w8a8 export one pruned model."""
    def __init__(self, prepared: Prepared, report: Callable[[str], None] = lambda _: None) -> None:
        self.prepared = prepared
        self.built: dict[str, Variant | Exception] = {}
        self.report = report    # progress lines of long rewrites (recovery's fine-tune)

    def get(self, recipe: Recipe) -> Variant:
        if recipe.kind != "module":
            return self.prepared.base
        key = recipe.module_part
        if key not in self.built:
            try:
                self.built[key] = self._build(recipe)
            except (ValueError, RuntimeError) as exc:   # PruneError and RecipeError are ValueErrors
                self.built[key] = exc
        found = self.built[key]
        if isinstance(found, Exception):
            raise RecipeError(f"{key} cannot be applied to {self.prepared.spec.name}: {short_message(found)}")
        return found

    def _build(self, recipe: Recipe) -> Variant:
        from edgeport.quantize.variants import module_for_recipe

        p, base = self.prepared, self.prepared.base
        if recipe.recover:
            return self._recovered(recipe)
        return self._variant(module_for_recipe(recipe, base.module, p.example()))

    def _variant(self, made: ModuleVariant, extra: Mapping[str, Any] | None = None) -> Variant:
        """PyTorch references, profile and PSNR against the original model of a rewritten module."""
        from edgeport.models.profile import profile_model

        p, base = self.prepared, self.prepared.base
        refs = torch_outputs(made.module, p.samples, p.input_names, p.output_names)
        profile = profile_model(lambda: copy.deepcopy(made.module).to("meta"), [c.shape for c in p.contracts])
        details = {**made.details, "vs_original_pytorch_db": db_for_json(versus_outputs(base.references, refs)),
                   **_versus_original_on_photos(p, base.references, refs),
                   "original_params": base.profile.params, "original_macs": base.profile.macs, **(extra or {})}
        return Variant(made.module, refs, profile, details, made.warning)

    def _recovered(self, recipe: Recipe) -> Variant:
        """Pruned from the activations, refit and distilled; the plain prune<N> variant (built once, shared with
        that recipe) gives the report's PSNR against the unpruned model before recovery."""
        from edgeport.quantize.variants import recovered_variant

        p, base = self.prepared, self.prepared.base
        plain = self.get(parse_recipe(f"prune{recipe.prune_percent}"))
        training = as_batches(p.calibration.arrays() + _team_rows(p), p.input_names)
        made = recovered_variant(base.module, p.example(), recipe.prune_percent, training, self.report)
        return self._variant(made, {"vs_original_before_recovery_db": plain.details.get("vs_original_pytorch_db"),
                                    "vs_original_photos_before_recovery_db": plain.details.get("vs_original_photos_db"),
                                    "vs_original_task_before_recovery": plain.details.get("vs_original_task"),
                                    "train_samples": len(training)})


def _team_rows(p: Prepared) -> list:
    """The team's --photos (parity samples labelled photo:team/...), which recovery also trains on."""
    return [s.arrays for s in p.samples if s.label.startswith(f"photo:{LABEL_PREFIX}")]


def _versus_original_on_photos(p: Prepared, original: list, rewritten: list) -> dict[str, Any]:
    """The rewritten model against the original on the photo samples: worst PSNR and the worst task score
    (the segmenter's mask IoU), what a pruned model has to keep."""
    photos = [i for i, s in enumerate(p.samples) if not is_noise_sample(s.label)]
    out: dict[str, Any] = {"vs_original_photos_db": db_for_json(
        versus_outputs([original[i] for i in photos], [rewritten[i] for i in photos]))}
    if p.spec.task_metric is not None and photos:
        worst: dict[str, float] = {}
        for i in photos:
            for key, value in p.spec.task_metric(original[i], rewritten[i]).items():
                worst[key] = min(worst.get(key, value), value)
        out["vs_original_task"] = {k: round(v, 4) for k, v in worst.items()}
    return out
