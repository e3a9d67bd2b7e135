"""A PNG bar chart of artifact sizes, drawn with Pillow (no plotting library needed)."""
from __future__ import annotations

from pathlib import Path

from benchmarks.size_report import ModelSizes

COLOURS = {"onnx": (66, 133, 244), "tflite": (234, 134, 0), "coreml": (52, 168, 83)}
ROW, LABEL_W, BAR_W, PAD = 22, 300, 560, 12


def draw_size_chart(models: list[ModelSizes], path: Path) -> None:
    """One bar per artifact (length = size), grouped by model; a dark tick marks the model's fp32 weights."""
    from PIL import Image, ImageDraw, ImageFont

    rows = sum(len(m.artifacts) + 1 for m in models)
    height = PAD * 3 + ROW * (rows + 1)
    image = Image.new("RGB", (LABEL_W + BAR_W + 120, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    largest = max([a.bytes for m in models for a in m.artifacts] + [m.fp32_bytes for m in models] + [1])
    draw.text((PAD, PAD), "Artifact size per model, format and recipe (tick: fp32 weights)", fill="black",
              font=font)
    y = PAD * 2 + ROW
    for m in models:
        draw.text((PAD, y), f"{m.model}  ({m.params / 1e6:.2f} M params)", fill="black", font=font)
        y += ROW
        tick = LABEL_W + int(BAR_W * m.fp32_bytes / largest)
        for a in m.artifacts:
            draw.text((PAD * 3, y + 4), f"{a.format} {a.precision}", fill=(60, 60, 60), font=font)
            length = max(1, int(BAR_W * a.bytes / largest))
            draw.rectangle([LABEL_W, y + 3, LABEL_W + length, y + ROW - 3], fill=COLOURS.get(a.format, (120, 120, 120)))
            draw.line([tick, y + 1, tick, y + ROW - 1], fill="black", width=2)
            draw.text((LABEL_W + length + 6, y + 4), f"{a.bytes / 1e6:.1f} MB ({a.ratio_to_fp32:.0%})", fill="black",
                      font=font)
            y += ROW
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
