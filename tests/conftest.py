"""Shared fixtures: reduced configs (few blocks, 16x16 inputs) so the suite stays fast on 2 cores."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Two xdist workers share the two cores: one OpenMP thread each (and in their row processes, which inherit
# this), else each worker's torch spins two threads against the other's (a 2 s fine-tune took 37 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test reaches the internet: `--weights official` takes the cache or the installed package; the download
# tests lift this for a server they start on 127.0.0.1.
os.environ["EDGEPORT_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]

TINY_X4PLUS = {"num_block": 1, "num_feat": 16, "num_grow_ch": 8}

# Every zoo model at a reduced config and input size: (settings, (height, width)).
SMALL = {
    "realesrgan-x4plus": (TINY_X4PLUS, (16, 16)),
    "realesrgan-x2plus": (TINY_X4PLUS, (16, 16)),
    "realesr-general-x4v3": ({"num_conv": 2, "num_feat": 16}, (16, 16)),
    "realesr-animevideov3": ({"num_conv": 2, "num_feat": 16}, (16, 16)),
    "realesrgan-x4plus-anime": (TINY_X4PLUS, (16, 16)),
    "denoise-dncnn-gray": ({"nb": 3, "nc": 8}, (32, 32)),
    "denoise-dncnn-color": ({"nb": 3, "nc": 8}, (32, 32)),
    "inpaint-gmcnn": ({"cnum": 4, "dilations": (1, 2, 2, 4)}, (64, 64)),
    "inpaint-pconv": ({"layer_size": 4, "width": 8}, (32, 32)),
    "deblur-r2attunet": ({"width": 8}, (32, 32)),   # width 4 misses the fp16 gate (37.8 dB), as full size does
    "interactive-segmenter": ({"head_channels": (8, 8, 4, 4)}, (64, 64)),
    "saliency-mobilenet": ({"lstm_channels": 32, "width": 0.5}, (64, 80)),  # at 16 channels the priors swamp the input
    "saliency-mobilenet-os16": ({"lstm_channels": 16, "width": 0.25}, (64, 80)),
    "depth-fcrn": ({"width": 0.125, "bottleneck": 64, "layers": (2, 2, 2, 2)}, (64, 96)),
    "depth-fcrn-mobilenet": ({"width": 0.25, "bottleneck": 32}, (64, 96)),
}


ALL_FORMATS = ("onnx", "tflite", "coreml", "executorch")


def cli(capsys, *args) -> subprocess.CompletedProcess:
    """The CLI in this process (its converters and row process stay between tests): (exit code, out, err)."""
    from edgeport.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:      # argparse's refusal of an argument
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Kernel-peak probes and other cached files go to a folder of this session, not the user's cache."""
    os.environ["EDGEPORT_CACHE"] = str(tmp_path_factory.mktemp("edgeport-cache"))


def shared_export(tmp_path_factory, worker_id: str, key: str, plan_for):
    """One export per test run, not per xdist worker: the first worker builds it, the other waits and reads
    it (tests only read what it wrote). `plan_for(out)` gives the ExportPlan; returns (out, summary)."""
    import pickle

    from filelock import FileLock

    from edgeport.export.isolation import run_export

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    out, saved = shared / key, shared / f"{key}.pickle"
    with FileLock(str(shared / f"{key}.lock")):
        if saved.is_file():
            return out, pickle.loads(saved.read_bytes())
        summary = run_export(plan_for(out))
        saved.write_bytes(pickle.dumps(summary))
    return out, summary


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, worker_id):
    """realesrgan-x4plus with 1 RRDB block, exported once to every format, for tests that read artifacts."""
    from edgeport.export.plan import ExportPlan

    return shared_export(tmp_path_factory, worker_id, "tiny-export", lambda out: ExportPlan(
        model="realesrgan-x4plus", formats=ALL_FORMATS, out_root=out, input_hw=(16, 16), config=TINY_X4PLUS))


@pytest.fixture(scope="session")
def pconv_export(tmp_path_factory, worker_id):
    """The reduced partial-conv inpainter at fp32 in every format: the zoo test judges it, the inpainting
    pipelines run on it."""
    from edgeport.export.plan import ExportPlan

    config, hw = SMALL["inpaint-pconv"]
    return shared_export(tmp_path_factory, worker_id, "pconv-export", lambda out: ExportPlan(
        model="inpaint-pconv", formats=ALL_FORMATS, out_root=out, input_hw=hw, config=config, recipes=("fp32",)))


# Longest first (xdist splits the queue between the two workers and an idle one takes tests from the other):
# a two-minute module that starts last leaves one worker idle while it finishes. Measured on these 2-core
# machines: the Ray matrix ~115 s, the bench fixture ~85 s, the recipe fixture ~75 s, the corpus ~55 s.
LONGEST_FIRST = ("test_ray_matrix.py", "test_bench.py", "test_recipes.py", "test_corpus.py",
                 "test_precision_search.py", "test_zoo.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))
