"""The tune chart: PSNR against size and against p50 latency, one colour per format, the Pareto front joined.
Drawn with Pillow (no plotting library), written atomically."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from edgeport.benchmarks.bar_chart import colour_of
from edgeport.report import human_bytes
from edgeport.runtimes.atomic import save_png
from edgeport.tune.ladder import TuneRow, pareto_front

PANEL_W, PANEL_H, MARGIN = 520, 380, 56
EXACT_DB = 160.0    # where an exact artifact is drawn (PSNR is infinite)


def _db(row: TuneRow) -> float:
    return EXACT_DB if math.isinf(row.db_vs_original) else min(row.db_vs_original, EXACT_DB)


def _panel(draw: Any, font: Any, x0: int, title: str, points: list[tuple[TuneRow, float]],
           label: Callable[[float], str]) -> None:
    """One scatter panel: x = the value given (log scale), y = PSNR, each format's Pareto front joined."""
    front = pareto_front(points)
    draw.rectangle([x0 + MARGIN, MARGIN, x0 + PANEL_W - 12, PANEL_H - MARGIN], outline=(180, 180, 180))
    draw.text((x0 + MARGIN, 12), title, fill="black", font=font)
    if not points:
        draw.text((x0 + MARGIN + 10, PANEL_H // 2), "nothing to draw", fill="black", font=font)
        return
    xs = [math.log10(max(v, 1e-9)) for _, v in points]
    ys = [_db(r) for r, _ in points]
    lo_x, hi_x = min(xs) - 0.05, max(xs) + 0.05
    lo_y, hi_y = min(ys) - 3, max(ys) + 3

    def at(x: float, y: float) -> tuple[float, float]:
        return (x0 + MARGIN + (x - lo_x) / (hi_x - lo_x) * (PANEL_W - MARGIN - 12),
                PANEL_H - MARGIN - (y - lo_y) / (hi_y - lo_y) * (PANEL_H - 2 * MARGIN))
    for value in (lo_x, hi_x):
        px, _ = at(value, lo_y)
        draw.text((px - 20, PANEL_H - MARGIN + 6), label(10 ** value), fill="black", font=font)
    for value in (lo_y, hi_y):
        _, py = at(lo_x, value)
        draw.text((x0 + 6, py - 6), f"{value:.0f} dB", fill="black", font=font)
    for fmt in dict.fromkeys(r.format for r, _ in points):
        on_front = sorted((math.log10(max(v, 1e-9)), _db(r)) for r, v in points
                          if r.format == fmt and (r.format, r.recipe) in front)
        if len(on_front) > 1:
            draw.line([at(x, y) for x, y in on_front], fill=colour_of(fmt), width=2)
    for (row, value), x, y in zip(points, xs, ys):
        px, py = at(x, y)
        colour = colour_of(row.format)
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        draw.text((px + 6, py - 6), row.recipe, fill=colour, font=font)


def draw_pareto(model: str, rows: list[Any], path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (2 * PANEL_W, PANEL_H + 30), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    passing = [r for r in rows if r.status == "pass" and r.db_vs_original is not None]
    _panel(draw, font, 0, f"{model}: worst photo PSNR vs the original model, by size (passing rows)",
           [(r, float(r.bytes)) for r in passing if r.bytes], lambda v: human_bytes(int(v)))
    _panel(draw, font, PANEL_W, "the same PSNR by p50 latency",
           [(r, r.p50_ms) for r in passing if r.p50_ms], lambda v: f"{v:.0f} ms")
    x = MARGIN
    for fmt in sorted({r.format for r in passing}):
        draw.rectangle([x, PANEL_H + 10, x + 10, PANEL_H + 20], fill=colour_of(fmt))
        draw.text((x + 14, PANEL_H + 8), fmt, fill="black", font=font)
        x += 24 + 7 * len(fmt)
    draw.text((x + 10, PANEL_H + 8), f"lines join each format's Pareto front; exact drawn at {EXACT_DB:.0f} dB",
              fill="black", font=font)
    save_png(path, image)
