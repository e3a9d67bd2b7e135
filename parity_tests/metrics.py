"""Error between a runtime's output and PyTorch's, per output tensor."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from edgeport.runtimes.json_numbers import db_for_json, number_for_json

if TYPE_CHECKING:
    from edgeport.runtimes.pixels import PixelEncoding


@dataclass(frozen=True)
class OutputMetrics:
    max_abs: float
    mean_abs: float
    psnr_db: float          # math.inf when the outputs are identical
    cosine: float
    finite: bool = True     # False when the runtime produced NaN or Inf
    # share of the reference at its own min or max: high means a clamp hides most of the signal
    reference_saturation: float = 0.0
    # True: an image output compared as 8-bit pixels (PyTorch's output rounded the way the artifact rounds),
    # so max_abs is the largest 8-bit difference
    eight_bit: bool = False

    def to_dict(self) -> dict[str, Any]:
        exact = math.isinf(self.psnr_db) and self.psnr_db > 0
        return {"max_abs": number_for_json(self.max_abs), "mean_abs": number_for_json(self.mean_abs),
                "psnr_db": None if exact or not self.finite else db_for_json(self.psnr_db, 3),
                "bit_exact": exact, "cosine": number_for_json(self.cosine), "finite": self.finite,
                "reference_saturation": round(self.reference_saturation, 4),
                "compared_as": "8-bit pixels" if self.eight_bit else "float values"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OutputMetrics":
        psnr = math.inf if d.get("bit_exact") else (d["psnr_db"] if d.get("psnr_db") is not None else -math.inf)
        def value(key: str, missing: float) -> float:   # null: the runtime gave NaN/Inf (written as finite: false)
            return missing if d.get(key) is None else d[key]
        return cls(value("max_abs", math.inf), value("mean_abs", math.inf), psnr, value("cosine", math.nan),
                   d.get("finite", True),
                   d.get("reference_saturation", 0.0), d.get("compared_as") == "8-bit pixels")


def compare_pixels(reference: np.ndarray, actual: np.ndarray, encoding: PixelEncoding) -> OutputMetrics:
    """An image output as the app sees it: both sides rounded to 8-bit pixels by one encoding (NaN kept)."""
    from dataclasses import replace

    if not np.all(np.isfinite(actual)):
        return replace(compare(reference, actual), eight_bit=True)
    return replace(compare(encoding.to_pixels(reference), encoding.to_pixels(actual)), eight_bit=True)


def eight_bit_psnr(reference: np.ndarray, actual: np.ndarray) -> float:
    """PSNR of two 8-bit pictures (or pixel selections of them) over the 255 levels an app shows; inf when
    identical. Unlike compare(), the peak is fixed: a dark or flat region is not judged on its own range."""
    mse = float(np.mean((reference.astype(np.float64) - actual.astype(np.float64)) ** 2)) if reference.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def compare(reference: np.ndarray, actual: np.ndarray) -> OutputMetrics:
    """PSNR is taken over the reference's own value range, so it means the same for [0,1] and [-1,1] outputs."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(actual, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"output shape {got.shape} differs from PyTorch's {ref.shape}")
    saturation = float(np.mean((ref == ref.min()) | (ref == ref.max())))
    if not np.all(np.isfinite(got)):
        return OutputMetrics(math.inf, math.inf, -math.inf, float("nan"), False, saturation)
    diff = np.abs(ref - got)
    mse = float(np.mean(diff ** 2))
    peak = float(ref.max() - ref.min()) or float(np.abs(ref).max()) or 1.0
    psnr = math.inf if mse == 0.0 else 10.0 * math.log10(peak ** 2 / mse)
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref.ravel(), got.ravel()) / denom) if denom > 0 else (1.0 if mse == 0.0 else 0.0)
    return OutputMetrics(float(diff.max()), float(diff.mean()), psnr, cosine, True, saturation)


def format_db(psnr_db: float | None) -> str:
    if psnr_db is None:
        return "-"
    if math.isinf(psnr_db):
        return "exact" if psnr_db > 0 else "NaN/Inf"
    return f"{psnr_db:.1f}"
