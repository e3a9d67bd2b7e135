"""The ncnn runtime (PyPI `ncnn`), used to check that weights read from ncnn files compute what ncnn computes.

ncnn is not an export target: this runner exists so a weight conversion is proven against the runtime the
files were made for. Computation is forced to fp32 (no fp16/bf16 storage or arithmetic, no packing: with
packing on, the Python Mat path returned NaN here), so differences come from the conversion, not ncnn's
reduced-precision kernels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.runtimes.base import RuntimeUnavailable


def ncnn_version() -> str:
    from importlib.metadata import version

    return version("ncnn")


def graph_endpoints(param: Path) -> tuple[str, str]:
    """(input blob, output blob): the Input layer's blob, and the one blob no layer consumes."""
    rows = [line.split() for line in Path(param).read_text().splitlines()[2:] if line.strip()]
    produced, consumed, first = [], set(), None
    for tokens in rows:
        n_in, n_out = int(tokens[2]), int(tokens[3])
        blobs = tokens[4:4 + n_in + n_out]
        consumed.update(blobs[:n_in])
        produced += blobs[n_in:]
        if tokens[0] == "Input" and first is None:
            first = blobs[n_in]
    outputs = [b for b in produced if b not in consumed]
    if first is None or len(outputs) != 1:
        raise ValueError(f"{param}: expected one Input layer and one unconsumed output blob")
    return first, outputs[0]


def run_ncnn(param: Path, weights: Path, image: np.ndarray, threads: int = 2) -> np.ndarray:
    """One CHW float32 array through the ncnn graph; returns CHW float32."""
    try:
        import ncnn
    except ImportError as exc:
        raise RuntimeUnavailable(f"the ncnn runtime is not installed ({exc}); scripts/setup.sh installs it") from None
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute, opt.num_threads, opt.use_packing_layout = False, threads, False
    opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = opt.use_bf16_storage = False
    if net.load_param(str(param)) or net.load_model(str(weights)):
        raise ValueError(f"ncnn could not load {param} / {weights}")
    source, sink = graph_endpoints(param)
    extractor = net.create_extractor()
    extractor.input(source, ncnn.Mat(np.ascontiguousarray(image, dtype=np.float32)))
    status, out = extractor.extract(sink)
    if status:
        raise ValueError(f"ncnn returned status {status} extracting {sink}")
    return np.array(out, dtype=np.float32)
