"""Real-ESRGAN's ncnn release files mapped onto BasicSR's state-dict names.

The graph is checked against the architecture, not just counted: fused activations, residual scales,
upsampling modes and factors must be the ones SRVGGNetCompact / RRDBNet compute, or the file is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edgeport.models.errors import CheckpointError
from edgeport.models.ncnn_files import NcnnGraph, NcnnLayer

LEAKY = 2          # ncnn Convolution activation_type 2 = leaky ReLU, slope in activation_params
NEAREST = 1        # ncnn Interp resize_type 1 = nearest


@dataclass(frozen=True)
class NcnnArchitecture:
    """What the graph computes, as the zoo's factory settings, plus the weights under upstream names."""

    arch: str
    config: Mapping[str, Any]
    state: Mapping[str, np.ndarray]

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        return f"{self.arch}({settings})"


def realesrgan_from_ncnn(graph: NcnnGraph) -> NcnnArchitecture:
    name = graph.param_path.name
    if graph.of_kind("PReLU"):
        return _srvgg(graph, name)
    if graph.of_kind("Eltwise"):
        return _rrdbnet(graph, name)
    raise CheckpointError(f"{name}: neither an SRVGGNetCompact (PReLU) nor an RRDBNet (Eltwise) ncnn graph")


def _only_kinds(graph: NcnnGraph, allowed: set[str], name: str, arch: str) -> None:
    extra = sorted(graph.kinds() - allowed)
    if extra:
        raise CheckpointError(f"{name}: ncnn layers {', '.join(extra)} are not part of {arch} "
                              "(a variant this reader does not map, e.g. the x2/x3 files' trailing bicubic resize)")


def _activation(conv: NcnnLayer) -> tuple[int, tuple]:
    return int(conv.param(9, 0)), tuple(conv.param(10, ()))


def _srvgg(graph: NcnnGraph, name: str) -> NcnnArchitecture:
    _only_kinds(graph, {"Input", "Split", "Convolution", "PReLU", "PixelShuffle", "Interp", "BinaryOp"}, name,
                "SRVGGNetCompact")
    convs, prelus = graph.of_kind("Convolution"), graph.of_kind("PReLU")
    shuffles, interps = graph.of_kind("PixelShuffle"), graph.of_kind("Interp")
    if len(shuffles) != 1 or len(interps) != 1:
        raise CheckpointError(f"{name}: SRVGGNetCompact has one PixelShuffle and one resize, this graph has "
                              f"{len(shuffles)} and {len(interps)} (the x2/x3 files add a bicubic downscale "
                              "after the x4 network: use the x4 file)")
    shuffle, interp = shuffles[0], interps[0]
    upscale = int(shuffle.param(0))
    if len(prelus) != len(convs) - 1 or any(_activation(c)[0] for c in convs):
        raise CheckpointError(f"{name}: SRVGGNetCompact alternates conv and PReLU; this graph does not")
    if int(interp.param(0)) != NEAREST or float(interp.param(1)) != upscale or float(interp.param(2)) != upscale:
        raise CheckpointError(f"{name}: the skip branch is not a nearest x{upscale} resize of the input")
    feat, in_ch = convs[0].weights["weight"].shape[:2]
    out_ch, rem = divmod(convs[-1].weights["weight"].shape[0], upscale * upscale)
    if rem:
        raise CheckpointError(f"{name}: last conv's {convs[-1].param(0)} outputs do not fold by PixelShuffle({upscale})")
    state: dict[str, np.ndarray] = {}
    for i, conv in enumerate(convs):
        state[f"body.{2 * i}.weight"] = conv.weights["weight"]
        state[f"body.{2 * i}.bias"] = _bias(conv, name)
        if i < len(prelus):
            state[f"body.{2 * i + 1}.weight"] = prelus[i].weights["slope"]
    config = {"num_in_ch": in_ch, "num_out_ch": out_ch, "num_feat": feat, "num_conv": len(convs) - 2,
              "upscale": upscale}
    return NcnnArchitecture("SRVGGNetCompact", config, state)


def _bias(conv: NcnnLayer, name: str) -> np.ndarray:
    if "bias" not in conv.weights:
        raise CheckpointError(f"{name}: {conv.name} has no bias, the upstream conv does")
    return conv.weights["bias"]


# per RRDB: 3 dense blocks of 5 convs, the first four with leaky ReLU 0.2
_RDB = (True, True, True, True, False)
_TAIL = (("conv_body", False), ("conv_up1", True), ("conv_up2", True), ("conv_hr", True), ("conv_last", False))


def _rrdbnet(graph: NcnnGraph, name: str) -> NcnnArchitecture:
    _only_kinds(graph, {"Input", "Split", "Concat", "Convolution", "Eltwise", "BinaryOp", "Interp"}, name, "RRDBNet")
    convs = graph.of_kind("Convolution")
    blocks, rem = divmod(len(convs) - 1 - len(_TAIL), 15)
    if rem or blocks < 1:
        raise CheckpointError(f"{name}: {len(convs)} convolutions do not make conv_first + 15 per RRDB + 5 tail convs")
    names = ["conv_first"] + [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    names += [n for n, _ in _TAIL]
    leaky = [False] + list(_RDB) * 3 * blocks + [a for _, a in _TAIL]
    for conv, key, wants in zip(convs, names, leaky):
        kind, params = _activation(conv)
        if (kind, params) != ((LEAKY, (0.2,)) if wants else (0, ())):
            raise CheckpointError(f"{name}: {conv.name} ({key}) has activation {kind} {params}, "
                                  f"RRDBNet has {'leaky ReLU 0.2' if wants else 'none'} there")
    _check_residuals(graph, blocks, name)
    _check_upsampling(graph, name)
    state: dict[str, np.ndarray] = {}
    for conv, key in zip(convs, names):
        state[f"{key}.weight"] = conv.weights["weight"]
        state[f"{key}.bias"] = _bias(conv, name)
    first, grow = convs[0].weights["weight"], convs[1].weights["weight"]
    config = {"num_in_ch": first.shape[1], "num_out_ch": convs[-1].weights["weight"].shape[0],
              "num_feat": first.shape[0], "num_grow_ch": grow.shape[0], "num_block": blocks, "scale": 4}
    return NcnnArchitecture("RRDBNet", config, state)


def _check_residuals(graph: NcnnGraph, blocks: int, name: str) -> None:
    """Each dense block and each RRDB ends in out * 0.2 + x: an Eltwise sum with coefficients (0.2, 1)."""
    sums = graph.of_kind("Eltwise")
    if len(sums) != 4 * blocks:
        raise CheckpointError(f"{name}: {len(sums)} residual sums, RRDBNet with {blocks} blocks has {4 * blocks}")
    for layer in sums:
        if int(layer.param(0)) != 1 or tuple(layer.param(1, ())) != (0.2, 1.0):
            raise CheckpointError(f"{name}: {layer.name} is not the residual out * 0.2 + x")


def _check_upsampling(graph: NcnnGraph, name: str) -> None:
    resizes = graph.of_kind("Interp")
    if len(resizes) != 2 or any(
            (int(r.param(0)), float(r.param(1)), float(r.param(2))) != (NEAREST, 2.0, 2.0) for r in resizes):
        raise CheckpointError(f"{name}: RRDBNet x4 upsamples twice by nearest x2; this graph does not "
                              "(x2/x1 RRDBNet ncnn files are not mapped)")
