"""ncnn model files (.param text graph + .bin weights) read strictly, without the ncnn runtime.

The official Real-ESRGAN release also ships as ncnn files (fp16 weights). Reading them here lets a team
export from the files they already have; models/realesrgan/ncnn_weights.py maps the graph onto the
upstream state-dict names. Every byte of the .bin must be consumed and every declared size must match.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from edgeport.models.errors import CheckpointError

PARAM_MAGIC = "7767517"
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000
# Layers whose .bin payload this reader knows; a graph with any other weighted layer is refused by name.
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid",
              "Clip", "Noop"}


@dataclass(frozen=True)
class NcnnLayer:
    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    # ncnn's "k=v" pairs: ints, floats, or (for negative keys) arrays
    params: Mapping[int, object]
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)

    def param(self, key: int, default: object = 0) -> object:
        return self.params.get(key, default)


@dataclass(frozen=True)
class NcnnGraph:
    layers: tuple[NcnnLayer, ...]
    param_path: Path
    bin_path: Path

    def of_kind(self, *kinds: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.kind in kinds]

    def kinds(self) -> set[str]:
        return {layer.kind for layer in self.layers}


def ncnn_pair(path: Path) -> tuple[Path, Path]:
    """The .param and .bin of one model, given either file."""
    path = Path(path)
    if path.suffix not in (".param", ".bin"):
        raise CheckpointError(f"{path} is not an ncnn model file (.param or .bin)")
    param, weights = path.with_suffix(".param"), path.with_suffix(".bin")
    for p in (param, weights):
        if not p.is_file():
            raise CheckpointError(f"ncnn model {path.stem}: {p} not found (the .param and .bin must sit side by side)")
    return param, weights


def is_ncnn_path(path: Path) -> bool:
    return Path(path).suffix in (".param", ".bin")


def read_ncnn(path: Path) -> NcnnGraph:
    """Parse the .param graph, then read each layer's weights from the .bin in layer order."""
    param_path, bin_path = ncnn_pair(path)
    layers = _parse_param(param_path)
    blob = bin_path.read_bytes()
    reader = _BinReader(blob, bin_path)
    loaded = tuple(_with_weights(layer, reader) for layer in layers)
    if reader.offset != len(blob):
        raise CheckpointError(f"{bin_path}: {len(blob) - reader.offset} bytes left after the last layer's weights "
                              f"(the .bin does not belong to {param_path.name}, or holds layers this reader skips)")
    return NcnnGraph(loaded, param_path, bin_path)


def _parse_param(path: Path) -> list[NcnnLayer]:
    lines = [ln.split() for ln in path.read_text(encoding="ascii", errors="replace").splitlines() if ln.strip()]
    if not lines or lines[0] != [PARAM_MAGIC]:
        raise CheckpointError(f"{path} is not a text ncnn .param file (first line must be {PARAM_MAGIC}; "
                              "binary .param.bin files are not read)")
    try:
        n_layers, _n_blobs = (int(v) for v in lines[1])
        layers = [_parse_layer(tokens) for tokens in lines[2:]]
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: malformed ncnn .param ({exc})") from None
    if len(layers) != n_layers:
        raise CheckpointError(f"{path}: header declares {n_layers} layers, file has {len(layers)}")
    return layers


def _parse_layer(tokens: list[str]) -> NcnnLayer:
    kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
    blobs = tokens[4:4 + n_in + n_out]
    if len(blobs) != n_in + n_out:
        raise ValueError(f"layer {name} lists fewer blobs than it declares")
    params = dict(_parse_kv(kv) for kv in tokens[4 + n_in + n_out:])
    return NcnnLayer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params)


def _parse_kv(token: str) -> tuple[int, object]:
    key_text, value = token.split("=", 1)
    key = int(key_text)
    if key <= -23300:  # array parameter: -23300 - id = count,v1,v2,...
        count, *values = value.split(",")
        if int(count) != len(values):
            raise ValueError(f"array parameter {key_text} declares {count} values, has {len(values)}")
        return -23300 - key, tuple(_number(v) for v in values)
    return key, _number(value)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


class _BinReader:
    def __init__(self, blob: bytes, path: Path) -> None:
        self.blob, self.path, self.offset = blob, path, 0

    def take(self, n: int, what: str) -> bytes:
        if self.offset + n > len(self.blob):
            raise CheckpointError(f"{self.path} ends at byte {len(self.blob)} inside {what} "
                                  "(truncated, or not the .bin of this .param)")
        chunk = self.blob[self.offset:self.offset + n]
        self.offset += n
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        """ncnn's auto-typed array: a 4-byte tag, then fp16 (padded to 4 bytes) or fp32 values."""
        (tag,) = struct.unpack("<I", self.take(4, what))
        if tag == FP16_TAG:
            data = self.take(count * 2, what)
            self.take((-count * 2) % 4, what)
            return np.frombuffer(data, dtype="<f2").astype(np.float32)
        if tag == FP32_TAG:
            return self.raw(count, what)
        raise CheckpointError(f"{self.path}: {what} is stored with tag {tag:#010x} (int8 or a lookup table); "
                              "only fp16 and fp32 ncnn weights are read")

    def raw(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * 4, what), dtype="<f4").astype(np.float32)


def _with_weights(layer: NcnnLayer, reader: _BinReader) -> NcnnLayer:
    if layer.kind in WEIGHTLESS:
        return layer
    if layer.kind == "Convolution":
        return _convolution(layer, reader)
    if layer.kind == "PReLU":
        slopes = reader.raw(int(layer.param(0, 0)), f"{layer.name} slopes")
        return replace(layer, weights={"slope": slopes})
    raise CheckpointError(f"ncnn layer {layer.name} has type {layer.kind}, whose weights this reader does not know")


def _convolution(layer: NcnnLayer, reader: _BinReader) -> NcnnLayer:
    out_ch, kernel = int(layer.param(0)), int(layer.param(1))
    kernel_h = int(layer.param(11, kernel))
    size = int(layer.param(6))
    if out_ch <= 0 or size % (out_ch * kernel * kernel_h):
        raise CheckpointError(f"ncnn layer {layer.name}: weight size {size} is not a multiple of "
                              f"{out_ch} outputs x {kernel_h}x{kernel} kernel")
    in_ch = size // (out_ch * kernel * kernel_h)
    weight = reader.tagged(size, f"{layer.name} weights").reshape(out_ch, in_ch, kernel_h, kernel)
    weights = {"weight": weight}
    if int(layer.param(5)):
        weights["bias"] = reader.raw(out_ch, f"{layer.name} bias")
    return replace(layer, weights=weights)
