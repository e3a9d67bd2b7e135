"""The manifest beside every artifact: what was exported from what, how, and the proof that it matches.

One typed reader (Manifest.from_dict / read_manifest) serves check, bench and size; it opens
edgeport.manifest/2 and the older /1. Importing this module loads neither torch nor a converter, so a
benchmark worker can read a manifest and stay a pure runtime process.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgeport.models.source import ModelSource
from edgeport.models.spec import TensorContract
from edgeport.models.team_photos import PhotoSet
from edgeport.parity_tests.report import ParityReport
from edgeport.runtimes.artifact import ArtifactRecord

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "edgeport.manifest/2"
READABLE_SCHEMAS = ("edgeport.manifest/1", MANIFEST_SCHEMA)


class ManifestError(ValueError):
    """A manifest that cannot be read: the message says which file and why."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    summary: str
    task: str
    params: int
    macs: int
    paper: str = ""
    upstream: str = ""
    notes: str = ""
    # the architecture and its hyper-parameters (for a spandrel-detected checkpoint: what it detected,
    # scale, tags and licence tag)
    architecture: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "task": self.task, "params": self.params,
                "macs": self.macs, "paper": self.paper, "upstream": self.upstream, "notes": self.notes,
                "architecture": dict(self.architecture)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelInfo":
        return cls(d["name"], d.get("summary", ""), d.get("task", ""), int(d["params"]), int(d["macs"]),
                   d.get("paper", ""), d.get("upstream", ""), d.get("notes", ""), dict(d.get("architecture") or {}))


@dataclass(frozen=True)
class RecipeInfo:
    """The recipe as exported; details hold what the step did (pruning figures, calibration set, the
    comparison with the fp32 artifact, error localisation)."""

    name: str
    kind: str
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rewrites_module(self) -> bool:
        """prune<N>(+...) and sparse<N>: the reference is the rewritten PyTorch model."""
        return self.kind == "module"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "summary": self.summary, **dict(self.details)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, export_precision: str) -> "RecipeInfo":
        d = dict(d or {"name": export_precision, "kind": "precision"})
        name, kind, summary = d.pop("name"), d.pop("kind", "precision"), d.pop("summary", "")
        return cls(name, kind, summary, d)


@dataclass(frozen=True)
class Manifest:
    created: str
    source: ModelSource
    model: ModelInfo
    inputs: tuple[TensorContract, ...]
    outputs: tuple[TensorContract, ...]
    recipe: RecipeInfo
    artifact: ArtifactRecord
    parity: ParityReport
    export_seconds: float = 0.0
    environment: Mapping[str, str] = field(default_factory=dict)
    schema: str = MANIFEST_SCHEMA
    photos: PhotoSet | None = None      # the team's validation photos among the parity samples (--photos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA, "created": self.created, "source": self.source.to_dict(),
            "model": self.model.to_dict(),
            "contract": {"inputs": [c.to_dict() for c in self.inputs], "outputs": [c.to_dict() for c in self.outputs]},
            "recipe": self.recipe.to_dict(), "artifact": self.artifact.to_dict(),
            "export_seconds": round(self.export_seconds, 2), "parity": self.parity.to_dict(),
            "environment": dict(self.environment), "photos": self.photos.to_dict() if self.photos else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Manifest":
        schema = d.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ManifestError(f"schema {schema!r} is not one edgeport reads ({', '.join(READABLE_SCHEMAS)})")
        artifact = ArtifactRecord.from_dict(d["artifact"])
        return cls(
            created=d.get("created", ""), source=ModelSource.from_dict(d["source"]),
            model=ModelInfo.from_dict(d["model"]),
            inputs=tuple(TensorContract.from_dict(c) for c in d["contract"]["inputs"]),
            outputs=tuple(TensorContract.from_dict(c) for c in d["contract"]["outputs"]),
            recipe=RecipeInfo.from_dict(d.get("recipe"), artifact.export_precision), artifact=artifact,
            parity=ParityReport.from_dict(d["parity"]), export_seconds=float(d.get("export_seconds", 0.0)),
            environment=dict(d.get("environment") or {}), schema=schema, photos=PhotoSet.from_dict(d.get("photos")),
        )

    @property
    def original_params(self) -> int:
        """A pruned model's manifest counts its own (fewer) params; the unpruned count is the size yardstick."""
        return int(self.recipe.details.get("original_params", self.model.params))


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"unreadable manifest {path}: {type(exc).__name__}: {exc}") from None


def find_manifests(root: Path) -> list[Path]:
    """The manifest of one artifact folder, or every one under a root (staging and old folders skipped)."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root / MANIFEST]
    return sorted(p for p in root.rglob(MANIFEST) if not any(part.startswith(".") for part in p.parts[-3:-1]))
