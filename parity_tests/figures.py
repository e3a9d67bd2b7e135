"""The picture a person looks at before the numbers: for the worst parity sample, input | PyTorch | artifact |
difference heatmap, side by side, drawn with Pillow and written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from edgeport.runtimes.atomic import save_png

if TYPE_CHECKING:
    from PIL import Image

    from edgeport.models.spec import ParityInput, TensorContract
    from edgeport.parity_tests.report import ParityReport

PARITY_FIGURE = "parity.png"   # written into each artifact folder by export (check writes check-parity.png)
PANEL = 224          # panel height in pixels
CAPTION = 34


def _planes(values: np.ndarray) -> np.ndarray:
    """The first sample of any output as an HxWxC array: an NCHW map as itself (first 3 channels), a token
    sequence (1xNxC) as an NxC map, a vector (logits) as a 1xK strip."""
    arr = np.asarray(values, np.float64)
    if arr.ndim == 4:
        return arr[0][:3].transpose(1, 2, 0)
    if arr.ndim == 3:
        return arr[0][..., None]
    return arr.reshape(1, -1, 1) if arr.ndim < 2 else arr[0].reshape(1, -1, 1)


def _picture(values: np.ndarray, contract: TensorContract, lo_hi: tuple[float, float] | None = None) -> np.ndarray:
    """Contract values -> HxWx3 uint8: through the contract's pixels, else stretched to lo_hi."""
    if contract.pixels is not None:
        img = contract.pixels.to_pixels(values)[0].transpose(1, 2, 0)
        img = img[..., ::-1] if contract.pixels.color == "BGR" else img
    else:
        arr = _planes(values)
        finite = arr[np.isfinite(arr)]          # NaN/Inf outputs are drawn too (NaN black, +Inf white)
        lo, hi = lo_hi or ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
        scaled = np.nan_to_num((arr - lo) / ((hi - lo) or 1.0) * 255, nan=0.0, posinf=255.0, neginf=0.0)
        img = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(img, 3, axis=-1) if img.shape[-1] in (1, 2) else img[..., :3]


def heat_colours(unit: np.ndarray) -> np.ndarray:
    """[0, 1] -> HxWx3 uint8 on a black-red-yellow-white ramp (reads in greyscale print too)."""
    u = np.clip(unit, 0.0, 1.0)[..., None]
    return (np.concatenate([np.clip(3 * u, 0, 1), np.clip(3 * u - 1, 0, 1), np.clip(3 * u - 2, 0, 1)], -1) * 255
            ).astype(np.uint8)


def difference_panel(reference: np.ndarray, actual: np.ndarray, contract: TensorContract) -> tuple[np.ndarray, str]:
    if contract.pixels is not None:
        ref = contract.pixels.to_pixels(reference).astype(np.float64)
        got = contract.pixels.to_pixels(actual).astype(np.float64)
        unit = "8-bit levels"
    else:
        ref, got, unit = reference, actual, "values"
    diff = np.abs(_planes(ref) - _planes(got)).mean(axis=-1)
    peak = float(diff.max())
    if not np.isfinite(peak):
        return heat_colours(np.ones_like(diff)), "NaN/Inf in the artifact's output"
    if peak == 0:
        return heat_colours(diff), "identical"
    return heat_colours(diff / peak), f"|diff| up to {peak:.3g} {unit} = white"


def _fit(img: np.ndarray, height: int) -> Image.Image:
    from PIL import Image

    pil = Image.fromarray(img)
    width = min(max(1, round(img.shape[1] * height / img.shape[0])), 3 * height)   # a long strip stays readable
    return pil.resize((width, height), Image.Resampling.NEAREST if img.shape[0] < height else Image.Resampling.BICUBIC)


def parity_grid(path: Path, title: str, inputs: Mapping[str, np.ndarray], in_contracts: Sequence[TensorContract],
                reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray],
                out_contracts: Sequence[TensorContract]) -> None:
    """One row per output: the picture input, PyTorch's output, the artifact's, and their difference."""
    from PIL import Image, ImageDraw

    shown_in = next((c for c in in_contracts if c.pixels is not None), in_contracts[0])
    source = _fit(_picture(inputs[shown_in.name], shown_in), PANEL)
    rows = []
    for contract in out_contracts:
        ref, got = reference[contract.name], actual[contract.name]
        lo_hi = (float(np.min(ref)), float(np.max(ref)))
        heat, note = difference_panel(ref, got, contract)
        panels = [(source, f"input {shown_in.name}"), (_fit(_picture(ref, contract, lo_hi), PANEL), "PyTorch"),
                  (_fit(_picture(np.nan_to_num(got), contract, lo_hi), PANEL), "artifact"), (_fit(heat, PANEL), note)]
        rows.append((contract.name, panels))
    width = max(sum(p.width + 8 for p, _ in panels) for _, panels in rows) + 8
    canvas = Image.new("RGB", (width, 24 + len(rows) * (PANEL + CAPTION)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title, fill="black")
    for r, (name, panels) in enumerate(rows):
        x, y = 8, 24 + r * (PANEL + CAPTION)
        for panel, caption in panels:
            canvas.paste(panel, (x, y))
            label = f"{caption}: {name}" if caption in ("PyTorch", "artifact") else caption
            draw.text((x, y + PANEL + 4), label, fill="black")
            x += panel.width + 8
    save_png(path, canvas)


def worst_sample(report: ParityReport, labels: Sequence[str]) -> int | None:
    """Index of the gated sample with the lowest PSNR on any output (NaN counts as the worst): the picture
    shows what the verdict stands on, so a calibrated recipe shows its worst photo, not the noise."""
    gated = [s for s in report.samples if report.gate.gates(s.sample)] or list(report.samples)
    if not gated:
        return None
    worst = min(gated, key=lambda s: s.metrics.psnr_db if s.metrics.finite else -np.inf)
    return labels.index(worst.sample) if worst.sample in labels else None


def grid_for(path: Path, title: str, report: ParityReport, inputs: Sequence[ParityInput],
             references: Sequence[Mapping], outputs: Sequence[Mapping], in_contracts: Sequence[TensorContract],
             out_contracts: Sequence[TensorContract]) -> bool:
    """The worst sample's grid; False (nothing written) when the runtime produced no outputs."""
    index = worst_sample(report, [s.label for s in inputs])
    if index is None or index >= len(outputs):
        return False
    parity_grid(path, f"{title}: worst sample {inputs[index].label} ({report.engine})", inputs[index].arrays,
                in_contracts, references[index], outputs[index], out_contracts)
    return True
