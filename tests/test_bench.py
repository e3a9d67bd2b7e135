"""The benchmark harness on a tiny model: schema, ordering, the comparison gate and its exit codes, the
busy-machine check. No wall-clock threshold anywhere: speed targets live in `edgeport bench` itself."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgeport.benchmarks.latency import BENCH_SCHEMA, BenchPlan, BenchRow, BenchRun, Stats, compare, run_bench, run_worker
from edgeport.benchmarks.machine import LoadCheck, check_load, cpu_flags, simd_features
from edgeport.benchmarks.peaks import KernelPeak
from edgeport.cli import main


def test_stats_are_ordered_percentiles():
    s = Stats.of([5.0, 1.0, 3.0, 2.0, 4.0, 100.0])
    assert s.min_ms == 1.0 and s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= 100.0 and s.runs == 6
    assert s.p50_ms == 3.5


@pytest.fixture(scope="module")
def tiny_bench(tiny_export):
    out, _ = tiny_export
    idle = LoadCheck(2, (0.0, 0.0, 0.0))
    plan = BenchPlan(out, threads=(1,), runs=3, warmup=1, baseline_processes=2, peak_probes=((32, 32),))
    return run_bench(plan, idle).to_dict()


@pytest.mark.e2e
def test_bench_covers_every_artifact_with_a_torch_baseline_in_one_schema(tiny_bench):
    data = tiny_bench
    assert data["schema"] == BENCH_SCHEMA and data["machine"]["cores"] >= 1
    rows = {(r["format"], r["recipe"]): r for r in data["rows"]}
    assert set(rows) == {("onnx", "fp32"), ("tflite", "fp32"), ("coreml", "fp32"), ("coreml", "fp16"),
                         ("executorch", "fp32"), ("torch", "contiguous"), ("torch", "channels_last")}
    for key in (("onnx", "fp32"), ("tflite", "fp32"), ("executorch", "fp32"), ("torch", "contiguous"),
                ("torch", "channels_last")):
        r = rows[key]
        lat = r["latency"]
        assert r["status"] == "ok" and lat["runs"] == 3, r
        assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
        assert r["gmacs_per_s"] > 0 and r["p50_vs_torch"] > 0 and r["peak_rss_mb"] > 0
        # against the runtime's own kernel peak: a fraction, or no figure and the reason
        assert (0 < r["efficiency"] <= 1) if r["efficiency"] is not None else "peak probe is unreliable" in r["message"]
    assert rows["torch", "contiguous"]["p50_vs_torch"] == 1.0
    assert rows["torch", "contiguous"]["message"].startswith("fastest of 2 processes (p50 ms: ")
    assert rows["onnx", "fp32"]["cold_start_ms"] > 0 and rows["torch", "contiguous"]["cold_start_ms"] is None
    assert "XNNPACK" in rows["tflite", "fp32"]["engine"] and "onnxruntime" in rows["onnx", "fp32"]["engine"]
    assert "ExecuTorch" in rows["executorch", "fp32"]["engine"]
    for key in (("coreml", "fp32"), ("coreml", "fp16")):   # never a latency from the MIL evaluator
        assert rows[key]["status"] == "unavailable" and rows[key]["latency"] is None
        assert "needs macOS" in rows[key]["message"]
    # one test over the benchmark: split across xdist workers, each ran the 90 s fixture
    _kernel_peaks_come_from_each_runtime_with_the_cpu_features(tiny_bench)


def _kernel_peaks_come_from_each_runtime_with_the_cpu_features(tiny_bench):
    peaks = {(p["format"], p["arithmetic"]) for p in tiny_bench["peaks"]}
    assert {("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8"), ("executorch", "fp32"),
            ("executorch", "int8"), ("torch", "fp32")} <= peaks, (peaks, tiny_bench["peak_problems"])
    assert all(p["gops"] > 0 for p in tiny_bench["peaks"])
    assert "coreml" not in {f for f, _ in peaks}
    machine = tiny_bench["machine"]
    assert machine["simd"] == simd_features() and isinstance(machine["int8_dot_product"], bool)


def test_simd_features_are_read_from_cpu_flags():
    zen3 = "processor : 0\nflags : fpu sse4_2 avx avx2 fma bmi2\n"
    zen5 = "flags : sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
    arm = "Features : fp asimd asimddp i8mm\n"
    assert simd_features(cpu_flags(zen3)) == ["SSE4.2", "AVX", "AVX2", "FMA"]
    assert "AVX-512 VNNI" in simd_features(cpu_flags(zen5))
    assert simd_features(cpu_flags(arm)) == ["NEON", "dotprod", "I8MM"]


def test_an_efficiency_above_the_peak_is_never_printed():
    from edgeport.benchmarks.latency import derive

    row = BenchRow("m", "onnx", "fp32", 1, "ok", macs=10 ** 9, stats=Stats.of([1.0, 1.0]))   # 2000 GOP/s
    (slow_peak,) = derive([row], [KernelPeak("onnx", "fp32", 1, 100.0, "ort", "probe")])
    assert slow_peak.efficiency is None and "unreliable" in slow_peak.message
    (fine,) = derive([row], [KernelPeak("onnx", "fp32", 1, 4000.0, "ort", "probe")])
    assert fine.efficiency == pytest.approx(0.5)


@pytest.mark.e2e
def test_runtime_workers_do_not_load_torch(tiny_export):
    from edgeport.parity_tests.manifest import read_manifest

    out, _ = tiny_export
    folder = out / "realesrgan-x4plus" / "onnx-fp32"
    manifest = read_manifest(folder / "manifest.json")
    result = run_worker({"kind": "artifact", "record": manifest.artifact.to_dict(), "dir": str(folder),
                         "inputs": [c.to_dict() for c in manifest.inputs], "threads": 1, "runs": 1, "warmup": 0})
    assert result["ok"] and result["torch_in_process"] is False


def _run(rows: dict[str, float]) -> dict:
    """A bench file whose artifacts have the given p50 / torch ratios."""
    return {"schema": BENCH_SCHEMA, "rows": [
        {"key": k, "format": k.split("/")[1].split("-")[0], "p50_vs_torch": v} for k, v in rows.items()]}


def test_comparison_uses_ratios_to_torch_and_flags_only_past_the_threshold():
    baseline = _run({"m/onnx-fp32@2": 0.50, "m/tflite-w8@2": 0.20, "m/onnx-w8a8@2": 0.30})
    current = _run({"m/onnx-fp32@2": 0.54, "m/tflite-w8@2": 0.25, "m/new-fp32@2": 9.0})
    compared, regressed = compare(baseline, current, 0.10)
    assert {c.key for c in compared} == {"m/onnx-fp32@2", "m/tflite-w8@2"}   # rows on one side only: skipped
    assert [c.key for c in regressed] == ["m/tflite-w8@2"] and regressed[0].change == pytest.approx(0.25)
    assert compare(baseline, current, 0.30)[1] == []
    with pytest.raises(ValueError, match="not an edgeport bench file"):
        compare({"schema": "other"}, current, 0.1)


def _fake_run(ratio: float) -> BenchRun:
    row = BenchRow("m", "onnx", "fp32", 2, "ok", engine="fake", macs=10**9, stats=Stats.of([2.0, 2.0]), vs_torch=ratio)
    return BenchRun([row], {"cpu": "test", "cores": 2, "system": "test", "simd": ["AVX2"]},
                    [KernelPeak("onnx", "fp32", 2, 100.0, "fake", "probe")], [], LoadCheck(2, (0.0, 0.0, 0.0)))


@pytest.mark.parametrize("ratio,limit,code", [(0.50, "10%", 0), (0.60, "10%", 1), (0.60, "25%", 0)])
def test_compare_exit_codes(tmp_path, monkeypatch, ratio, limit, code):
    import edgeport.commands.reports as reports   # the bench command's own names

    (tmp_path / "art").mkdir()
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(_fake_run(0.50).to_dict()))
    monkeypatch.setattr(reports, "check_load", lambda: LoadCheck(2, (0.0, 0.0, 0.0)))
    monkeypatch.setattr(reports, "run_bench", lambda *a, **k: _fake_run(ratio))
    assert main(["bench", str(tmp_path / "art"), "--compare", str(baseline), "--max-regression", limit,
                 "--out", str(tmp_path / "out"), "--quiet"]) == code
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert written["schema"] == BENCH_SCHEMA and (tmp_path / "out" / "bench.png").stat().st_size > 0


def test_busy_machine_is_detected_and_strict_refuses(tmp_path, monkeypatch, capsys):
    # another program's busy loop: started through a shell that exits, so it is not this process's child
    # (the check leaves out the benchmark's own process tree)
    spin = f"{sys.executable} -c 'import time\nt = time.time()\nwhile time.time() - t < 20: pass' >/dev/null 2>&1 &"
    pid = int(subprocess.run(["sh", "-c", spin + " echo $!"], capture_output=True, text=True).stdout.split()[-1])
    try:
        time.sleep(0.5)
        load = check_load(sample_seconds=1.0)
        assert pid in {p for p, _, _ in load.busy}, load
        assert load.is_busy and "machine busy" in load.describe()
    finally:
        os.kill(pid, signal.SIGKILL)

    import edgeport.commands.reports as reports   # the bench command's own names

    busy = LoadCheck(2, (1.5, 1.0, 0.5), [(4242, "make", 97.0)])
    monkeypatch.setattr(reports, "check_load", lambda: busy)
    (tmp_path / "art").mkdir()
    assert main(["bench", str(tmp_path / "art"), "--strict", "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refusing to benchmark" in err and "make (pid 4242)" in err and not (tmp_path / "out").exists()


def test_bad_bench_input_gets_one_line_and_exit_2(tmp_path, capsys):
    assert main(["bench", str(tmp_path), "--all"]) == 2     # --all means ./artifacts: refused beside a PATH
    assert "--all benchmarks every model under ./artifacts" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing")]) == 2
    assert main(["bench", str(tmp_path), "--threads", "two"]) == 2
    assert main(["bench", str(tmp_path), "--max-regression", "lots"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("edgeport: error")]
    assert len(lines) == 3
