"""The export matrix on a local Ray: a killed worker's task is retried and the artifacts equal the serial run's."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from edgeport.cli import main
from edgeport.cluster.matrix import TASK_PID_DIR
from edgeport.cluster.ray_executor import BENCH_SLOT, start_ray
from edgeport.export.isolation import run_export
from edgeport.export.plan import ExportPlan

pytestmark = pytest.mark.e2e

MODELS = ("realesr-general-x4v3", "realesr-animevideov3")
FORMATS = ("onnx", "tflite")      # the victim's format and one more: the mechanism, not every converter
RECIPES = ("fp32", "fp16")       # a recipe compared with its format's fp32 artifact; fp16 needs no calibration
TINY = {"num_conv": 2, "num_feat": 8}
VICTIM = "realesr-animevideov3__tflite-fp32"    # one of the longer tasks, killed as soon as it starts


def _kill_first_attempt(pid_dir: Path, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set() and not killed:
        for marker in pid_dir.glob(f"{VICTIM}.*") if pid_dir.is_dir() else ():
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_a_matrix_on_two_ray_workers_survives_a_killed_worker_with_the_serial_digests(tmp_path, monkeypatch, capsys):
    serial, against_fp32 = {}, {}
    for model in MODELS:
        summary = run_export(ExportPlan(model=model, formats=FORMATS, out_root=tmp_path / "serial",
                                        recipes=RECIPES, input_hw=(16, 16), config=TINY))
        serial.update({(model, r.format, r.recipe): r.digest for r in summary.rows})
        against_fp32.update({(model, r.format, r.recipe): r.to_dict()["vs_fp32_artifact_db"]
                             for r in summary.rows})
    capsys.readouterr()         # the converters' own chatter during the serial run
    pid_dir, stop, killed = tmp_path / "pids", threading.Event(), []
    monkeypatch.setenv(TASK_PID_DIR, str(pid_dir))     # before Ray starts: its workers inherit it
    start_ray(None, 2, {BENCH_SLOT: 1})   # one local Ray for the export and the bench (the CLI reuses it)
    killer = threading.Thread(target=_kill_first_attempt, args=(pid_dir, stop, killed), daemon=True)
    killer.start()
    try:
        code = main(["export", ",".join(MODELS), "--to", ",".join(FORMATS), "--recipe", ",".join(RECIPES),
                     "--input-size", "16x16", *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")],
                     "--executor", "ray", "--ray-workers", "2", "--out", str(tmp_path / "ray"), "--json"])
        captured = capsys.readouterr()
        _check_matrix(tmp_path, captured, code, killed, pid_dir, serial, against_fp32)
        _bench_runs_one_task_per_node_at_a_time(tmp_path / "ray", capsys)
    finally:
        stop.set()
        ray.shutdown()


def _check_matrix(tmp_path: Path, captured, code: int, killed: list[int], pid_dir: Path, serial: dict,
                  against_fp32: dict) -> None:
    assert killed, "the victim task never started"
    assert code == 0, captured.err[-3000:]
    assert f"ran 2 times: its worker died (pids {killed[0]}" in captured.err      # Ray retried it elsewhere
    assert len(list(pid_dir.glob(f"{VICTIM}.*"))) == 2
    payload = json.loads(captured.out)
    rows = {(m["model"], r["format"], r["recipe"]): r for m in payload["models"] for r in m["rows"]}
    assert {k: r["digest"] for k, r in rows.items()} == serial and len(serial) == 8
    assert all(r["status"] == "pass" for r in rows.values())
    # each recipe task was compared with its format's fp32 artifact, as in the serial run
    assert {k: r["vs_fp32_artifact_db"] for k, r in rows.items()} == against_fp32
    for model in MODELS:      # the same files land in the output folder, with the model's summary and report
        folder = tmp_path / "ray" / model
        assert json.loads((folder / "export.json").read_text())["ok"]
        assert (folder / "report.md").is_file() and not list(folder.glob(".staging-*"))
        for fmt in FORMATS:
            manifest = json.loads((folder / f"{fmt}-fp16" / "manifest.json").read_text())
            assert manifest["artifact"]["digest"] == serial[model, fmt, "fp16"]
            assert against_fp32[model, fmt, "fp16"] is not None
            assert manifest["recipe"]["vs_fp32_artifact_db"] == against_fp32[model, fmt, "fp16"]


def _bench_runs_one_task_per_node_at_a_time(folder: Path, capsys) -> None:
    bench_root = folder.parent / "bench"      # one artifact per model folder: two tasks, each quick
    for model in MODELS:
        shutil.copytree(folder / model / "onnx-fp16", bench_root / model / "onnx-fp16")
    code = main(["bench", str(bench_root), "--executor", "ray", "--ray-workers", "2", "--threads", "1", "--runs",
                 "1", "--warmup", "0", "--no-peaks", "--no-torch", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and len(data["rows"]) == 2 and all(r["status"] == "ok" for r in data["rows"])
    first, second = sorted(t["window"] for t in data["tasks"])      # two model folders, two tasks, one node
    assert len(data["tasks"]) == 2 and first[1] <= second[0], data["tasks"]


def test_a_url_output_without_ray_and_ray_without_a_writable_store_are_refused(tmp_path, capsys):
    assert main(["export", "realesr-general-x4v3", "--out", "memory://x", "--to", "onnx"]) == 2
    assert "only `--executor ray` writes to fsspec URLs" in capsys.readouterr().err
    assert main(["export", "realesr-general-x4v3", "--executor", "ray", "--out", "nosuchscheme://bucket/x",
                 "--to", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to nosuchscheme://bucket/x" in err and len(err.strip().splitlines()) == 1
