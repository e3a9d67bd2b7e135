"""A PNG bar chart of artifact sizes: one bar per artifact, grouped by model, ticked at fp32 weights."""
from __future__ import annotations

from pathlib import Path

from edgeport.benchmarks.bar_chart import Bar, BarGroup, draw_bar_chart
from edgeport.benchmarks.size_report import ModelSizes


def draw_size_chart(models: list[ModelSizes], path: Path) -> None:
    groups = [BarGroup(f"{m.model}  ({m.params / 1e6:.2f} M params)",
                       [Bar(f"{a.format} {a.recipe}", a.bytes, f"{a.bytes / 1e6:.1f} MB ({a.ratio_to_fp32:.0%})",
                            a.format) for a in m.artifacts], tick=m.fp32_bytes) for m in models]
    draw_bar_chart("Artifact size per model, format and recipe (tick: fp32 weights)", groups, path)
