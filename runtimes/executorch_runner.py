"""ExecuTorch .pte programs in ExecuTorch's own Python runtime (the portable runtime with the XNNPACK
backend compiled in), as an app's ExecuTorch module would run them. Its Python API takes torch tensors, so an
ExecuTorch worker loads torch, unlike the ONNX and TFLite ones."""
from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path
from typing import Mapping

import numpy as np

from edgeport.runtimes.artifact import ArtifactRecord
from edgeport.runtimes.base import PARITY_THREADS, RuntimeUnavailable, artifact_feed, captured_output, from_artifact_layout


def _set_threads(threads: int) -> int:
    """XNNPACK's thread pool is process-wide in ExecuTorch; returns what it now holds. A process that runs
    several programs at different thread counts must load each after its reset (the benchmark's workers
    run one)."""
    from executorch.extension.pybindings import portable_lib

    with captured_output():   # it logs the reset from C++
        portable_lib._unsafe_reset_threadpool(threads)
    return int(portable_lib._threadpool_get_thread_count())


class ExecuTorchRunner:
    def __init__(self, record: ArtifactRecord, artifact_dir: Path, threads: int = PARITY_THREADS) -> None:
        # before the program loads: XNNPACK's delegate binds the pool at load, and resetting it afterwards
        # deadlocked the first run (seen at 1 thread)
        pool = _set_threads(threads)
        with captured_output():
            from executorch.runtime import Runtime

            runtime = Runtime.get()
            if not runtime.backend_registry.is_available("XnnpackBackend"):
                raise RuntimeUnavailable("this ExecuTorch build has no XNNPACK backend")
            self.program = runtime.load_program(Path(artifact_dir / record.main_file))
            self.method = self.program.load_method("forward")
        self.record = record
        backends = ", ".join(record.details.get("delegates") or ["no delegate"])
        self.engine = (f"ExecuTorch {metadata.version('executorch')} runtime ({backends}, {pool} threads)")

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feed = artifact_feed(self.record.inputs, inputs, np.float32)
        args = [torch.from_numpy(feed[b.artifact_name]) for b in self.record.inputs]
        outs = self.method.execute(args)
        return {b.name: from_artifact_layout(o.detach().numpy().copy(), b) for b, o in zip(self.record.outputs, outs)}
