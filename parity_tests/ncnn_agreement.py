"""Weights read from ncnn release files, proven against the ncnn runtime on the same photos.

Not an export gate: the check that models/ncnn_files.py reads what ncnn itself computes from those files.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeport.models.ncnn_files import ncnn_pair
from edgeport.models.official import packaged_files
from edgeport.models.source import instantiate, resolve_inputs, source_for
from edgeport.models.spec import is_noise_sample
from edgeport.parity_tests.metrics import compare
from edgeport.runtimes.ncnn_runner import run_ncnn

if TYPE_CHECKING:
    from edgeport.models.spec import ModelSpec

NCNN_GATE_DB = 60.0   # the fp32 conversion gate: the same fp16-stored weights, both sides computing in fp32


def ncnn_agreement(spec: ModelSpec, size: int) -> list[dict[str, Any]]:
    """PyTorch with weights read from the release's ncnn files vs the ncnn runtime on those files, per photo.
    ncnn's graph has no output clamp (the upstream app clamps), so its output is clipped to [0, 1] too."""
    import numpy as np
    import torch

    found = packaged_files(spec)
    module = instantiate(spec, source_for(spec, {}, found.path, seed=0))
    contracts = resolve_inputs(spec, (size, size))
    rows = []
    for sample in spec.make_inputs(contracts, 0):
        if is_noise_sample(sample.label):
            continue
        x = sample.arrays[contracts[0].name]
        with torch.no_grad():
            ours = module(torch.tensor(x)).numpy()[0]
        theirs = np.clip(run_ncnn(*ncnn_pair(found.path), x[0]), 0.0, 1.0)
        m = compare(ours, theirs)
        rows.append({"photo": sample.label, "psnr_db": round(m.psnr_db, 2), "max_abs": m.max_abs})
    return rows
