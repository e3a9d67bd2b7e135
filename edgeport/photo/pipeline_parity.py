"""Whole-pipeline parity: an app's final 8-bit picture from an artifact against the same pipeline with the
PyTorch model in the artifact's place, plus the app's own measure. One exported tensor can pass its gate and
the app still differ (tiling, compositing, a mask thresholded at 0.5); this compares what the user sees."""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from edgeport.parity_tests.metrics import eight_bit_psnr
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.reference import with_pytorch
from edgeport.photo.run import PhotoRun
from edgeport.runtimes.json_numbers import db_for_json

PIPELINE_GATE_DB = 40.0   # fp32 artifacts, on the final 8-bit picture (int8: reported as measured)

# (artifact or its PyTorch stand-in, output folder) -> the pipeline's run on the photo
PipelineRun = Callable[[LoadedArtifact, Path], PhotoRun]


@dataclass(frozen=True)
class PictureDifference:
    psnr_db: float          # over 8-bit levels (peak 255); inf when identical
    max_8bit_diff: int

    @classmethod
    def of(cls, reference: np.ndarray, actual: np.ndarray) -> PictureDifference:
        if reference.shape != actual.shape:
            raise ValueError(f"the pictures differ in size: {actual.shape} vs the reference's {reference.shape}")
        diff = np.abs(reference.astype(np.int32) - actual.astype(np.int32))
        return cls(eight_bit_psnr(reference, actual), int(diff.max()))


@dataclass(frozen=True)
class PipelineParity:
    pipeline: str
    label: str                          # model, format, recipe
    engine: str                         # who produced the artifact's picture
    picture: PictureDifference          # the final picture against the PyTorch pipeline's
    measures: dict[str, float] = field(default_factory=dict)   # the app's own, e.g. outside_max_diff
    gate_db: float | None = PIPELINE_GATE_DB   # None: reported, not gated (a lossy recipe)

    @property
    def passed(self) -> bool:
        return self.gate_db is None or self.picture.psnr_db >= self.gate_db

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "artifact": self.label, "engine": self.engine,
                "psnr_db": db_for_json(self.picture.psnr_db), "bit_exact": math.isinf(self.picture.psnr_db),
                "max_8bit_diff": self.picture.max_8bit_diff, "measures": self.measures, "gate_db": self.gate_db,
                "passed": self.passed}


def read_picture(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def pipeline_parity(name: str, art: LoadedArtifact, run: PipelineRun,
                    measure: Callable[[np.ndarray, np.ndarray], dict[str, float]] = lambda got, ref: {},
                    ) -> PipelineParity:
    """The pipeline on the artifact and on its PyTorch model, first outputs compared; `measure(artifact's,
    reference's)` adds the app's own figures. fp32 artifacts are gated, lossy recipes reported."""
    with tempfile.TemporaryDirectory(prefix="edgeport-pipeline-") as tmp:
        mine, theirs = Path(tmp, "artifact"), Path(tmp, "pytorch")
        mine.mkdir(), theirs.mkdir()
        got = read_picture(run(art, mine).outputs[0])
        ref = read_picture(run(with_pytorch(art), theirs).outputs[0])
    lossy = art.manifest.recipe.name != "fp32"
    return PipelineParity(name, art.label, art.runtime.engine, PictureDifference.of(ref, got), measure(got, ref),
                          None if lossy else PIPELINE_GATE_DB)
