"""The seam check: a tiled run of the artifact against one untiled PyTorch run on the same crop of a photo,
compared as 8-bit pictures. What it measures is everything tiling adds (truncated context at tile borders,
blending) on top of the artifact's own error, so it is judged by the artifact's own gate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeport.errors import UsageError
from edgeport.models.team_photos import fitted
from edgeport.parity_tests.metrics import compare
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.reference import with_pytorch
from edgeport.photo.run import picture_output, run_tiled
from edgeport.photo.tiling import TilePlan
from edgeport.runtimes.json_numbers import db_for_json


@dataclass(frozen=True)
class SeamCheck:
    crop_hw: tuple[int, int]
    tiles: int
    tile: tuple[int, int]
    overlap: int
    margin: int
    psnr_db: float
    max_8bit_diff: int
    gate_db: float
    engine: str

    @property
    def passed(self) -> bool:
        return self.psnr_db >= self.gate_db

    def to_dict(self) -> dict[str, Any]:
        return {"crop_hw": list(self.crop_hw), "tiles": self.tiles, "tile": list(self.tile), "overlap": self.overlap,
                "margin": self.margin, "psnr_db": db_for_json(self.psnr_db),
                "bit_exact": bool(np.isinf(self.psnr_db)), "max_8bit_diff": self.max_8bit_diff,
                "gate_db": self.gate_db, "passed": self.passed, "engine": self.engine}


def _pytorch_picture(art: LoadedArtifact, crop: np.ndarray) -> np.ndarray:
    """The crop untiled, through the artifact's PyTorch model in its runtime's place, as 8-bit pixels."""
    output = picture_output(art)
    reference = with_pytorch(art)
    got = reference.runtime.run(reference.feed(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]), {}))
    pixels = output.pixels.to_pixels(got[output.name])[0].transpose(1, 2, 0)
    return pixels[..., ::-1] if output.pixels.color == "BGR" else pixels


def seam_check(art: LoadedArtifact, photo: np.ndarray, plan: TilePlan) -> SeamCheck:
    """Two by two tiles sharing one seam each way: the crop is 2 x tile - overlap on each side."""
    side_h, side_w = 2 * plan.tile_h - plan.overlap, 2 * plan.tile_w - plan.overlap
    rule = art.spec.size_rule
    problem = rule(art.manifest.source.config, side_h, side_w) if rule else None
    if problem:
        raise UsageError(f"the seam check's {side_h}x{side_w} crop does not fit {art.manifest.model.name}: {problem}; "
                         "pick an --overlap the model's size rule allows")
    crop = fitted(photo, side_h, side_w, "crop")   # a centre crop, reflected up when the photo is smaller
    tiled, _ = run_tiled(art, crop, plan)
    reference = _pytorch_picture(art, crop)
    metrics = compare(reference.astype(np.float64), tiled.astype(np.float64))
    return SeamCheck((side_h, side_w), plan.count(side_h, side_w), (plan.tile_h, plan.tile_w), plan.overlap,
                     plan.margin, metrics.psnr_db, int(metrics.max_abs), art.manifest.parity.gate.min_psnr_db,
                     f"{art.runtime.engine} tiled vs PyTorch untiled")
