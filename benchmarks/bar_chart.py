"""Horizontal bar charts as PNG, drawn with Pillow (no plotting library needed); written atomically."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeport.exporters.formats import all_formats
from edgeport.runtimes.atomic import save_png

TORCH_COLOUR = (140, 140, 140)


def colour_of(key: str) -> tuple[int, int, int]:
    """A format's own colour (Format.colour, so a plug-in format has one too); PyTorch eager is grey."""
    if key == "torch":
        return TORCH_COLOUR
    fmt = all_formats().get(key)
    return fmt.colour if fmt else (120, 120, 120)


ROW, LABEL_W, BAR_W, PAD = 22, 300, 560, 12


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    colour_key: str = ""


@dataclass(frozen=True)
class BarGroup:
    title: str
    bars: list[Bar] = field(default_factory=list)
    tick: float | None = None      # a dark mark across the group's bars (fp32 weights, the torch baseline)


def draw_bar_chart(title: str, groups: list[BarGroup], path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    rows = sum(len(g.bars) + 1 for g in groups)
    image = Image.new("RGB", (LABEL_W + BAR_W + 160, PAD * 3 + ROW * (rows + 1)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    largest = max([b.value for g in groups for b in g.bars] + [g.tick or 0 for g in groups] + [1e-12])
    draw.text((PAD, PAD), title, fill="black", font=font)
    y = PAD * 2 + ROW
    for group in groups:
        draw.text((PAD, y), group.title, fill="black", font=font)
        y += ROW
        for bar in group.bars:
            draw.text((PAD * 3, y + 4), bar.label, fill=(60, 60, 60), font=font)
            length = max(1, int(BAR_W * bar.value / largest))
            draw.rectangle([LABEL_W, y + 3, LABEL_W + length, y + ROW - 3],
                           fill=colour_of(bar.colour_key))
            if group.tick is not None:
                tick = LABEL_W + int(BAR_W * group.tick / largest)
                draw.line([tick, y + 1, tick, y + ROW - 1], fill="black", width=2)
            draw.text((LABEL_W + length + 6, y + 4), bar.text, fill="black", font=font)
            y += ROW
    save_png(path, image)
