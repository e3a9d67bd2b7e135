"""What a parity run found, as typed results with one reader each; judging is separate from running."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from edgeport.models.spec import ParityGate, is_noise_sample
from edgeport.parity_tests.metrics import OutputMetrics, format_db
from edgeport.runtimes.json_numbers import db_for_json, number_for_json

SATURATION_WARNING = 0.25


@dataclass(frozen=True)
class SampleResult:
    sample: str
    output: str
    metrics: OutputMetrics

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample, "output": self.output, **self.metrics.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SampleResult":
        return cls(d["sample"], d["output"], OutputMetrics.from_dict(d))


@dataclass(frozen=True)
class ParityReport:
    """status: pass, fail (a bound missed) or error (the runtime could not run it: never a pass)."""

    status: str
    engine: str
    gate: ParityGate
    samples: tuple[SampleResult, ...] = ()
    message: str = ""
    seed: int = 0
    task: tuple[tuple[str, dict], ...] = ()   # (sample, {metric: value}) where the model defines a task metric

    @property
    def task_worst(self) -> dict[str, float]:
        """Each task score at its worst sample (every score here is better when higher)."""
        worst: dict[str, float] = {}
        for _, scores in self.task:
            for key, value in scores.items():
                worst[key] = min(worst.get(key, value), value)
        return worst

    @property
    def worst_psnr_db(self) -> float | None:
        return min((s.metrics.psnr_db for s in self.samples), default=None)

    @property
    def gated_db(self) -> float | None:
        """Worst PSNR over the samples the gate judges (what a search has to raise)."""
        return min((s.metrics.psnr_db for s in gated(self.samples, self.gate)), default=None)

    @property
    def photo_db(self) -> float | None:
        """Worst PSNR over the in-distribution samples (None when every sample is noise)."""
        return min((s.metrics.psnr_db for s in self.samples if not is_noise_sample(s.sample)), default=None)

    @property
    def noise_db(self) -> float | None:
        return min((s.metrics.psnr_db for s in self.samples if is_noise_sample(s.sample)), default=None)

    @property
    def photo_max_8bit(self) -> int | None:
        """The largest 8-bit difference of a picture output over the photos; None without picture outputs."""
        found = [s.metrics.max_abs for s in self.samples
                 if s.metrics.eight_bit and s.metrics.finite and not is_noise_sample(s.sample)]
        return int(max(found)) if found else None

    def figures(self) -> str:
        """One line for logs: photo and noise PSNR, and which of them the gate judged."""
        on = "every sample" if self.gate.samples == "all" else "photos only"
        return (f"photos {format_db(self.photo_db)} dB, noise {format_db(self.noise_db)} dB "
                f"(gate {self.gate.min_psnr_db:g} dB on {on}; engine {self.engine})")

    @property
    def finite(self) -> bool:
        """False when the runtime gave NaN or Inf on any sample: a failed row, whatever the gate."""
        return all(s.metrics.finite for s in self.samples)

    @property
    def bit_exact(self) -> bool:
        worst = self.worst_psnr_db
        return worst is not None and math.isinf(worst) and worst > 0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst_psnr_db
        return {
            "status": self.status, "engine": self.engine, "gate": self.gate.to_dict(), "message": self.message,
            "seed": self.seed,
            "worst_psnr_db": db_for_json(worst, 3),
            "worst_bit_exact": self.bit_exact,
            "worst_max_abs": number_for_json(max((s.metrics.max_abs for s in self.samples), default=None)),
            "min_cosine": number_for_json(min((s.metrics.cosine for s in self.samples if s.metrics.finite),
                                              default=None)),
            "finite": self.finite,
            "non_finite_samples": sorted({s.sample for s in self.samples if not s.metrics.finite}),
            "photo_psnr_db": db_for_json(self.photo_db, 3), "noise_psnr_db": db_for_json(self.noise_db, 3),
            "photo_max_8bit_diff": self.photo_max_8bit, "samples": [s.to_dict() for s in self.samples],
            "task": {label: scores for label, scores in self.task}, "task_worst": self.task_worst,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ParityReport":
        return cls(d["status"], d["engine"], ParityGate.from_dict(d["gate"]),
                   tuple(SampleResult.from_dict(s) for s in d.get("samples") or ()), d.get("message", ""),
                   int(d.get("seed", 0)), tuple((d.get("task") or {}).items()))



def gated(samples: Sequence[SampleResult], gate: ParityGate) -> list[SampleResult]:
    """The samples the gate judges: all, or the in-distribution ones (all of them when there are no photos)."""
    chosen = [s for s in samples if gate.gates(s.sample)]
    return chosen or list(samples)


def judge(samples: Sequence[SampleResult], gate: ParityGate) -> tuple[str, str]:
    """Status and the reason; a pass may carry a warning that the evidence is weak. NaN fails on any sample,
    gated or not; an ungated sample's PSNR stays in the report (photo_db / noise_db)."""
    for s in samples:
        if not s.metrics.finite:
            return "fail", f"{s.sample}/{s.output}: runtime output has NaN or Inf"
    return _judge_gated(gated(samples, gate), gate)


def _judge_gated(samples: Sequence[SampleResult], gate: ParityGate) -> tuple[str, str]:
    for s in samples:
        m = s.metrics
        if m.psnr_db < gate.min_psnr_db:
            return "fail", f"{s.sample}/{s.output}: {format_db(m.psnr_db)} dB < {gate.min_psnr_db:g} dB"
        if gate.min_cosine is not None and m.cosine < gate.min_cosine:
            return "fail", f"{s.sample}/{s.output}: cosine {m.cosine:.6f} < {gate.min_cosine}"
    worst = max(samples, key=lambda s: s.metrics.reference_saturation, default=None)
    if worst is not None and worst.metrics.reference_saturation > SATURATION_WARNING:
        return "pass", (f"weak evidence: {worst.metrics.reference_saturation:.0%} of the PyTorch output for "
                        f"{worst.sample} sits at its min/max (clamped), so parity covers little of the signal")
    return "pass", ""
