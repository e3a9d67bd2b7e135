"""Summary tables for the terminal (fixed width) and for PR comments (markdown)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from edgeport.parity_tests.figures import PARITY_FIGURE
from edgeport.parity_tests.metrics import format_db

if TYPE_CHECKING:
    from edgeport.export.results import ExportSummary


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def short_engine(engine: str) -> str:
    """'onnxruntime 1.32.0 (CPUExecutionProvider)' -> 'onnxruntime 1.32.0'; the manifest keeps the full text."""
    if not engine:
        return "-"
    head, _, rest = engine.partition(" (")
    return f"{head} {rest.split(',')[0].rstrip(')')}" if "LiteRT" in head else head


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def export_table(rows: Sequence[dict]) -> str:
    """Photo and noise PSNR side by side; a '*' marks a figure the recipe's gate does not judge."""
    headers = ("model", "format", "recipe", "route", "size", "export s", "photo dB", "max Δ8", "noise dB",
               "vs fp32 art.", "engine", "status")
    body = [(r["model"], r["format"], r["recipe"], r["route"] or "-",
             human_bytes(r["bytes"]) if r["bytes"] else "-",
             f"{r['export_seconds']:.1f}" if r.get("export_seconds") else "-",
             *_parity_cells(r),
             format_db(r["vs_fp32_artifact_db"]) if r.get("vs_fp32_artifact_db") is not None else "-",
             short_engine(r["engine"]), r["status"]) for r in rows]
    text = table(headers, body)
    if any(r.get("gated_on") == "photos" and r.get("noise_psnr_db") is not None for r in rows):
        text += "\n* reported, not gated: calibrated and lossy recipes are judged on photos (README: Parity gates)"
    return text


def _parity_cells(r: dict) -> tuple[str, str, str]:
    """photo dB, the largest 8-bit difference on the photos (picture outputs only), noise dB."""
    eight = str(r["photo_max_8bit_diff"]) if r.get("photo_max_8bit_diff") is not None else "-"
    if r.get("bit_exact"):
        return "exact", eight, "exact"
    if r.get("finite") is False:    # a figure that is not a number is said, never left blank
        def cell(key: str) -> str:
            return format_db(r[key]) if r.get(key) is not None else "NaN/Inf"
        return cell("photo_psnr_db"), eight, cell("noise_psnr_db")
    if r.get("photo_psnr_db") is None and r.get("noise_psnr_db") is None:
        return format_db(r.get("worst_psnr_db")), eight, "-"
    noise = format_db(r.get("noise_psnr_db")) if r.get("noise_psnr_db") is not None else "-"
    if r.get("gated_on") == "photos" and noise != "-":
        noise += "*"
    return format_db(r.get("photo_psnr_db")), eight, noise


def problems(rows: Sequence[dict]) -> list[str]:
    """The reason under the table for every row that did not pass."""
    out = []
    for r in rows:
        if r["status"] != "pass" and r.get("message"):
            op = f" [op: {r['op']}]" if r.get("op") else ""
            out.append(f"{r['model']} {r['format']} {r['recipe']}: {r['status']}{op}: {r['message']}")
        elif r.get("message"):
            out.append(f"{r['model']} {r['format']} {r['recipe']}: note: {r['message']}")
    return out


def _figure_section(rows: Sequence[dict], root: Path, folder_of: Callable[[dict], str | None], figure: str,
                    exists: Callable[[str], bool] | None = None) -> list[str]:
    exists = exists or (lambda rel: (root / rel).is_file())
    lines = []
    for r in rows:
        folder = folder_of(r)
        if folder is not None and exists(f"{folder}/{figure}"):
            lines += [f"### {r['model']} · {r['format']} · {r['recipe']} · {r['status']}", "",
                      f"![{r['model']} {r['format']} {r['recipe']}: input, PyTorch, artifact, difference]"
                      f"({folder}/{figure})", ""]
    return lines


def export_markdown(summary: ExportSummary, model_dir: Path, exists: Callable[[str], bool] | None = None) -> str:
    """report.md beside an export: the summary table, then each artifact's parity picture (worst sample).
    `exists(relative path)` says whether a picture is there when the folder is not local (an fsspec store)."""
    rows = summary.to_dict()["rows"]
    lines = [f"# {summary.model}", "", f"Source: {summary.source}", "",
             "Each picture: the worst parity sample's input, PyTorch's output, the artifact's output in its "
             "runtime, and their difference amplified so the largest reads white.", "",
             "```", export_table(rows), *problems(rows), "```", ""]
    return "\n".join(lines + _figure_section(rows, model_dir, lambda r: f"{r['format']}-{r['recipe']}", PARITY_FIGURE,
                                              exists))


def check_markdown(rows: Sequence[dict], root: Path, folders: Sequence[Path], figure: str) -> str:
    """check-report.md: the check table, then each re-checked artifact's picture."""
    by_row = {id(r): f for r, f in zip(rows, folders)}
    lines = ["# edgeport check", "", "```", export_table(rows), *problems(rows), "```", ""]
    return "\n".join(lines + _figure_section(rows, root, lambda r: _relative(by_row[id(r)], root), figure))


def _relative(folder: Path, root: Path) -> str | None:
    try:
        return folder.relative_to(root).as_posix() or "."
    except ValueError:
        return None
