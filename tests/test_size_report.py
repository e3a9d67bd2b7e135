"""`edgeport size`: sizes read from real manifests, ratios against fp32 weights, markdown, JSON and PNG."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeport", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.mark.e2e
def test_size_report_over_real_artifacts(tiny_export, tmp_path):
    from PIL import Image

    artifacts, summary = tiny_export
    out = tmp_path / "report"
    proc = run_cli("size", artifacts, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "edgeport.size-report/1"
    (model,) = data["models"]
    assert model["model"] == "realesrgan-x4plus" and model["fp32_bytes"] == model["params"] * 4
    sizes = {(a["format"], a["recipe"]): a for a in model["artifacts"]}
    assert set(sizes) == {(r.format, r.recipe) for r in summary.rows}
    for (fmt, precision), a in sizes.items():
        assert a["bytes"] == next(r.bytes for r in summary.rows if (r.format, r.recipe) == (fmt, precision))
        assert a["ratio_to_fp32"] == round(a["bytes"] / model["fp32_bytes"], 4)
    # fp32 artifacts carry the weights plus a graph, the image I/O ops and the metadata: at this tiny size
    # (221 KB of weights) that is a fixed overhead, under 160 KB (ONNX's per-node export metadata is most of
    # it); fp16 halves the weights (the package shrinks less than the 50-52% measured at full size)
    fp32 = model["fp32_bytes"]
    assert all(0.95 * fp32 < a["bytes"] < fp32 + 160_000 for k, a in sizes.items() if k[1] == "fp32"), sizes
    assert sizes[("coreml", "fp16")]["bytes"] < 0.95 * sizes[("coreml", "fp32")]["bytes"]
    layers = model["largest_layers"]
    assert len(layers) == 5 and layers[0]["params"] >= layers[-1]["params"] > 0
    assert json.loads((out / "size-report.json").read_text()) == data
    markdown = (out / "size-report.md").read_text()
    assert "| realesrgan-x4plus |" in markdown and "Largest layers" in markdown
    with Image.open(out / "size-report.png") as chart:
        assert chart.format == "PNG" and chart.size[1] > 100


def test_size_report_without_artifacts_is_one_clear_line(tmp_path):
    proc = run_cli("size", tmp_path)
    assert proc.returncode == 2 and "no manifest.json under" in proc.stderr
