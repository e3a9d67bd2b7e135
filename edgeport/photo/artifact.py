"""An exported artifact opened for photos: its manifest, its runtime, its model's spec and the picture input a
photo feeds; what every `edgeport run` pipeline starts from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import UsageError
from edgeport.exporters.formats import open_runtime
from edgeport.models import get_spec
from edgeport.models.spec import ModelSpec, TensorContract
from edgeport.parity_tests.manifest import MANIFEST, Manifest, ManifestError, read_manifest
from edgeport.runtimes.base import Runtime


@dataclass(frozen=True)
class LoadedArtifact:
    path: Path
    manifest: Manifest
    runtime: Runtime
    spec: ModelSpec
    image: TensorContract               # the input contract the photo feeds (the first 4-D one)

    @property
    def color(self) -> str:
        return self.image.pixels.color if self.image.pixels is not None else "RGB"

    def feed(self, pixels: np.ndarray, extras: dict[str, Any]) -> dict[str, np.ndarray]:
        """Photo pixels (plus a mask channel) -> the model's inputs: the spec's feed, else the one picture."""
        if self.spec.photo.feed is not None:
            return self.spec.photo.feed(pixels, extras)
        return {self.image.name: self.image.pixels.from_pixels(pixels)}

    @property
    def label(self) -> str:
        m = self.manifest
        return f"{m.model.name} {m.artifact.format} {m.recipe.name}"

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """The artifact's input size, or None when it takes any height and width."""
        binding = next(b for b in self.manifest.artifact.inputs if b.name == self.image.name)
        return None if -1 in binding.shape else tuple(self.image.shape[2:])


def load_artifact(path: Path, threads: int) -> LoadedArtifact:
    """Raises UsageError when the folder is no artifact or its model takes more than a photo."""
    folder = path if path.is_dir() and not path.suffix == ".mlpackage" else path.parent
    try:
        manifest = read_manifest(folder / MANIFEST)
    except ManifestError as exc:
        raise UsageError(f"{path} is not an exported artifact ({exc}); give a folder `edgeport export` wrote") from None
    spec = get_spec(manifest.source.model, [c.shape for c in manifest.inputs])
    pictures = [c for c in manifest.inputs if c.pixels is not None]
    if spec.photo.feed is None and (len(pictures) != 1 or len(manifest.inputs) != 1):
        raise UsageError(f"{manifest.model.name} takes {', '.join(c.name for c in manifest.inputs)} and its spec "
                         "says no way to build them from a photo; `edgeport run` runs it once it does")
    image = next(c for c in manifest.inputs if len(c.shape) == 4)
    return LoadedArtifact(folder, manifest, open_runtime(manifest.artifact, folder, threads), spec, image)
