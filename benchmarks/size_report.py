"""Size report over exported artifacts: what each format and recipe costs on disk, against fp32 weights.

Reads only manifests (and the zoo spec, for the largest layers), so it covers whatever recipes exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeport.models import ModelError
from edgeport.parity_tests.manifest import find_manifests, read_manifest
from edgeport.parity_tests.reference import rebuild_reference

if TYPE_CHECKING:
    from edgeport.parity_tests.manifest import Manifest


@dataclass(frozen=True)
class ArtifactSize:
    format: str
    recipe: str
    route: str
    bytes: int
    ratio_to_fp32: float      # artifact bytes / (params x 4 bytes)
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "recipe": self.recipe, "route": self.route, "bytes": self.bytes,
                "ratio_to_fp32": round(self.ratio_to_fp32, 4), "path": self.path}


@dataclass
class ModelSizes:
    model: str
    params: int
    largest_layers: list[tuple[str, int]] = field(default_factory=list)   # (module, params)
    artifacts: list[ArtifactSize] = field(default_factory=list)
    note: str = ""

    @property
    def fp32_bytes(self) -> int:
        return self.params * 4

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params, "fp32_bytes": self.fp32_bytes,
                "largest_layers": [{"module": n, "params": p, "fp32_bytes": p * 4} for n, p in self.largest_layers],
                "artifacts": [a.to_dict() for a in self.artifacts], "note": self.note}


def largest_layers(manifest: Manifest, count: int = 5) -> tuple[list[tuple[str, int]], str]:
    """The modules holding the most parameters, from the model rebuilt as the manifest says (on the meta
    device: structure only)."""
    try:
        module = rebuild_reference(manifest, materialize=False).module
    except ModelError as exc:
        return [], f"largest layers unavailable: {exc}"
    sizes = [(name, sum(p.numel() for p in m.parameters(recurse=False))) for name, m in module.named_modules()]
    return sorted((s for s in sizes if s[1]), key=lambda s: -s[1])[:count], ""


def collect(root: Path) -> list[ModelSizes]:
    by_model: dict[str, ModelSizes] = {}
    for path in find_manifests(Path(root)):
        manifest = read_manifest(path)
        name, params, art = manifest.model.name, manifest.original_params, manifest.artifact
        if name not in by_model:
            layers, note = largest_layers(manifest)
            by_model[name] = ModelSizes(name, params, layers, note=note)
        by_model[name].artifacts.append(ArtifactSize(art.format, manifest.recipe.name, art.route, art.total_bytes,
                                                     art.total_bytes / (params * 4), str(path.parent)))
    for sizes in by_model.values():
        sizes.artifacts.sort(key=lambda a: (a.format, a.recipe))
    return list(by_model.values())


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def to_markdown(models: list[ModelSizes]) -> str:
    lines = ["# Size report", "", "| model | params | fp32 weights | format | recipe | route | artifact | vs fp32 |",
             "|---|---|---|---|---|---|---|---|"]
    for m in models:
        for a in m.artifacts:
            lines.append(f"| {m.model} | {m.params / 1e6:.2f} M | {_mb(m.fp32_bytes)} | {a.format} | {a.recipe} | "
                         f"{a.route} | {_mb(a.bytes)} | {a.ratio_to_fp32:.1%} |")
    lines += ["", "## Largest layers (fp32)", ""]
    for m in models:
        layers = ", ".join(f"`{n}` {_mb(p * 4)}" for n, p in m.largest_layers) or m.note or "-"
        lines.append(f"- **{m.model}**: {layers}")
    return "\n".join(lines) + "\n"
