"""The format registry: a format is one module; ExecuTorch came in that way; exports are reproducible and a
converter in its own process is bounded in time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edgeport.export.isolation import run_export
from edgeport.export.plan import ExportPlan
from conftest import ALL_FORMATS, ROOT, TINY_X4PLUS

THROWAWAY = textwrap.dedent('''
    """A throwaway format: the model as an ONNX file under another name, run by onnxruntime."""
    from edgeport.exporters.base import Exporter, nchw_bindings
    from edgeport.exporters.formats import Format
    from edgeport.exporters.onnx_exporter import write_onnx
    from edgeport.runtimes.artifact import ArtifactRecord, file_records
    from edgeport.runtimes.onnxruntime_runner import OnnxRuntimeRunner


    class ThrowawayExporter(Exporter):
        def export(self, request):
            path = request.work_dir / f"{request.stem}.model"
            write_onnx(request.module, request.example_inputs, path, request.input_names, request.output_names,
                       False)
            shapes = [tuple(t.shape) for t in request.example_inputs]
            return ArtifactRecord("throwaway", request.precision, "write_onnx", path.name,
                                  file_records(request.work_dir), nchw_bindings(request.input_names, shapes, False),
                                  nchw_bindings(request.output_names, request.output_shapes, False))


    FORMAT = Format(name="throwaway", label="Throwaway", exporter=ThrowawayExporter(),
                    open_runtime=OnnxRuntimeRunner, recipe_module=__name__)
''')


def test_every_builtin_format_is_one_registry_entry_with_its_recipes():
    from edgeport.exporters.formats import all_formats, get_format

    formats = all_formats()
    assert tuple(formats) == ALL_FORMATS
    assert get_format("executorch").recipes == ("fp32", "w8a8", "w8a8-qat")
    assert "palettize4" in get_format("coreml").recipes and "palettize4" not in get_format("onnx").recipes
    from edgeport.exporters.base import ExportError

    with pytest.raises(ExportError, match="unknown format 'pdf'; formats: onnx, tflite, coreml, executorch"):
        get_format("pdf")


def test_recipe_and_step_registries_refuse_duplicates():
    import edgeport.quantize.onnx_recipes  # noqa: F401  (registers ONNX's steps)
    from edgeport.quantize.recipes import RECIPES, Recipe, register_recipe
    from edgeport.quantize.steps import register_step

    with pytest.raises(RuntimeError, match="registered twice"):
        register_recipe(Recipe("fp16", "precision", "again", 40.0, "fp16"))
    with pytest.raises(RuntimeError, match="already has a step"):
        register_step("onnx", "w8a8", "artifact", "again")(lambda *a: None)
    with pytest.raises(RuntimeError, match="no recipe exports"):
        register_step("onnx", "int3", "artifact", "nothing")(lambda *a: None)
    assert RECIPES["w8a8"].gate({}).min_psnr_db == 30 and RECIPES["w8a8"].int8


@pytest.mark.e2e
def test_a_throwaway_format_from_one_module_flows_through_export_check_size_and_bench(tmp_path, monkeypatch,
                                                                                     capsys):
    from edgeport.benchmarks.latency import BenchPlan, run_bench
    from edgeport.benchmarks.machine import LoadCheck
    from edgeport.cli import main

    (tmp_path / "throwaway_format.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))   # the bench's workers
    monkeypatch.setenv("EDGEPORT_FORMATS", "throwaway_format")
    out = tmp_path / "out"
    summary = run_export(ExportPlan(model="realesr-general-x4v3", formats=("throwaway",), out_root=out,
                                    recipes=("fp32", "w8a8"), input_hw=(16, 16), config={"num_conv": 2, "num_feat": 8}))
    fp32, w8a8 = summary.rows
    assert fp32.status == "pass" and fp32.worst_psnr_db > 100 and "onnxruntime" in fp32.engine
    assert w8a8.status == "unsupported" and "its recipes: fp32" in w8a8.message
    assert main(["check", str(out), "--quiet"]) == 0 and "1 passed, 0 failed" in capsys.readouterr().out
    assert main(["size", str(out), "--json"]) == 0
    size = json.loads(capsys.readouterr().out)
    assert [a["format"] for a in size["models"][0]["artifacts"]] == ["throwaway"]
    bench = run_bench(BenchPlan(out, threads=(1,), runs=2, warmup=0, torch_baseline=False, measure_peaks=False),
                      LoadCheck(2, (0.0, 0.0, 0.0)))
    (row,) = bench.rows
    assert row.format == "throwaway" and row.status == "ok" and row.stats.p50_ms > 0, row.message


@pytest.mark.e2e
def test_identical_core_ml_exports_have_identical_digests(tiny_export, tmp_path):
    """A second export in another process (another hash seed, another folder) gives the same bytes. ONNX,
    TFLite and ExecuTorch are proven the same way by the Ray matrix test (tests/test_ray_matrix.py), whose
    workers are other processes; Core ML, which that test does not export, is proven here."""
    out, summary = tiny_export
    settings = [a for k, v in TINY_X4PLUS.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "edgeport", "export", "realesrgan-x4plus", "--to", "coreml",
                           "--input-size", "16x16", *settings, "--out", str(tmp_path), "--json", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "12345", "EDGEPORT_IN_PROCESS": "1"})   # one import
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = {(r["format"], r["recipe"]): r["digest"] for r in json.loads(proc.stdout)["rows"]}
    first = {(r.format, r.recipe): r.digest for r in summary.rows if r.format == "coreml"}
    assert first == again and len(first) == 2 and all(d.startswith("sha256:") for d in first.values())


@pytest.mark.e2e
def test_a_converter_past_its_time_bound_fails_its_row_and_the_others_go_on(tmp_path):
    plan = ExportPlan(model="realesr-general-x4v3", formats=("tflite", "onnx"), out_root=tmp_path, input_hw=(16, 16),
                      config={"num_conv": 2, "num_feat": 8},
                      options={"tflite_route": "onnx2tf", "converter_timeout": 1.0})
    tflite, onnx = run_export(plan).rows
    assert tflite.status == "export-failed" and "onnx2tf timed out after 1 s" in tflite.message
    assert "--converter-timeout" in tflite.message
    assert onnx.status == "pass"
    assert not (tmp_path / "realesr-general-x4v3" / "tflite-fp32").exists()
