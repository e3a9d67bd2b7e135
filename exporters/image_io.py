"""Image I/O compiled into an artifact: the contract's pixel conversion becomes graph ops, so an app feeds the
photo's 8-bit pixels and gets 8-bit pixels back, with nothing to hand-write.

Two shapes of it. ONNX, TFLite and ExecuTorch take uint8 NHWC (the layout every image decoder gives) and
return uint8 NHWC: cast, transpose and scale go in, scale, clamp, round, cast and transpose come out. Core ML
takes an image (ImageType: its scale and per-channel bias do the normalisation; a per-channel std that one
scale cannot express is a first `mul`, after ImageType's bias subtracts 255 x mean: a mul-then-add first op
was fused by coremltools into a batch_norm whose epsilon scales the input by 1 - 5e-6, 57.6 dB on a depth
net) and returns an image: the program ends at float levels 0-255, already rounded, which Core ML turns
into the pixel buffer.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgeport.runtimes.artifact import TensorBinding
from edgeport.runtimes.base import to_artifact_layout
from edgeport.runtimes.pixels import PixelEncoding

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeport.exporters.base import ExportRequest

IO_MODES = ("image", "tensor")
Encodings = tuple[PixelEncoding | None, ...]


def _column(values: Sequence[float]) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)


def _pixel_module_class() -> type:
    import torch
    from torch import nn

    class PixelIO(nn.Module):
        """`inner` between pixel conversions. nhwc_uint8: uint8 NHWC at both ends; else float NCHW levels in
        (already scaled by Core ML when `scaled_in`) and rounded float levels out."""

        takes_packed_inputs = True   # forward(*xs): see dynamic_shapes_for

        def __init__(self, inner: nn.Module, inputs: Encodings, outputs: Encodings, nhwc_uint8: bool,
                     scaled_in: tuple[bool, ...]) -> None:
            super().__init__()
            self.inner, self.inputs, self.outputs = inner, inputs, outputs
            self.nhwc_uint8, self.scaled_in = nhwc_uint8, scaled_in
            for i, enc in enumerate(inputs):
                if enc is not None:
                    self.register_buffer(f"in_scale_{i}", _column([1 / (255 * s) for s in enc.std]))
                    self.register_buffer(f"in_shift_{i}", _column([-m / s for m, s in zip(enc.mean, enc.std)]))
            for i, enc in enumerate(outputs):
                if enc is not None:
                    self.register_buffer(f"out_scale_{i}", _column([255 * s for s in enc.std]))
                    self.register_buffer(f"out_shift_{i}", _column([255 * m for m in enc.mean]))

        def _decode(self, i: int, x: torch.Tensor) -> torch.Tensor:
            if self.inputs[i] is None or self.scaled_in[i]:
                return x
            if not self.nhwc_uint8:   # Core ML's ImageType subtracted 255 x mean; only the per-channel scale is left
                return x * getattr(self, f"in_scale_{i}")
            # cast first (XNNPACK takes float transposes, not uint8 ones), and a contiguous copy: ExecuTorch's
            # XNNPACK delegate refused a quantized program fed through a bare permute
            x = x.to(torch.float32).permute(0, 3, 1, 2).contiguous()
            return x * getattr(self, f"in_scale_{i}") + getattr(self, f"in_shift_{i}")

        def _encode(self, i: int, y: torch.Tensor) -> torch.Tensor:
            if self.outputs[i] is None:
                return y
            levels = torch.round(torch.clamp(y * getattr(self, f"out_scale_{i}") + getattr(self, f"out_shift_{i}"),
                                             0.0, 255.0))
            return levels.permute(0, 2, 3, 1).to(torch.uint8) if self.nhwc_uint8 else levels

        def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
            out = self.inner(*[self._decode(i, x) for i, x in enumerate(xs)])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            encoded = tuple(self._encode(i, y) for i, y in enumerate(outs))
            return encoded if isinstance(out, (tuple, list)) else encoded[0]

    return PixelIO


def dynamic_shapes_for(module: nn.Module, per_input: tuple | None) -> tuple | None:
    """torch.export matches dynamic_shapes to forward's signature: the image wrapper takes *xs, one tuple."""
    if per_input is None or not getattr(module, "takes_packed_inputs", False):
        return per_input
    return (per_input,)


def encodings(contracts: Sequence[Any], io: str) -> Encodings:
    """Each contract's pixel encoding when image I/O is asked for and the contract is an image, else None."""
    if io not in IO_MODES:
        raise ValueError(f"--io must be one of {', '.join(IO_MODES)}, not {io!r}")
    return tuple(getattr(c, "pixels", None) if io == "image" else None for c in contracts)


def image_bindings(bindings: tuple[TensorBinding, ...], encs: Encodings) -> tuple[TensorBinding, ...]:
    """Bindings told which are 8-bit images (uint8 arrays, or Core ML images) and how they map to the contract."""
    return tuple(replace(b, pixels=e, dtype="uint8") if e is not None else b for b, e in zip(bindings, encs))


def uint8_bindings(names: Sequence[str], nchw_shapes: Sequence[tuple[int, ...]],
                   encs: Encodings) -> tuple[TensorBinding, ...]:
    """Bindings of a uint8-NHWC-image artifact whose tensors keep PyTorch's names (ExecuTorch)."""
    return tuple(TensorBinding(n, n, (s[0], s[2], s[3], s[1]), "NHWC", "uint8", e) if e is not None
                 else TensorBinding(n, n, tuple(s), "NCHW") for n, s, e in zip(names, nchw_shapes, encs))


def _artifact_arrays(arrays: Mapping[str, np.ndarray], names: Sequence[str], encs: Encodings,
                     layout: str) -> dict[str, np.ndarray]:
    out = dict(arrays)
    for name, enc in zip(names, encs):
        if enc is not None and name in arrays:
            out[name] = to_artifact_layout(np.asarray(arrays[name]), TensorBinding(name, name, (), layout, "uint8", enc))
    return out


def pixel_request(request: ExportRequest, in_encs: Encodings, out_encs: Encodings, nhwc_uint8: bool,
                  scaled_in: tuple[bool, ...] = ()) -> ExportRequest:
    """The request with its module wrapped and its example, sample and calibration inputs given as pixels
    (uint8 NHWC, or uint8 NCHW levels for Core ML's image inputs)."""
    import torch

    scaled_in = scaled_in or (False,) * len(in_encs)
    module = _pixel_module_class()(request.module, in_encs, out_encs, nhwc_uint8, scaled_in)
    module.training = False   # not .eval(): it would recurse into a PT2E-quantized inner program, which refuses
    layout = "NHWC" if nhwc_uint8 else "NCHW"
    names = request.input_names
    feed = _artifact_arrays({n: t.detach().numpy() for n, t in zip(names, request.example_inputs)}, names, in_encs,
                            layout)

    def example(name: str, tensor: torch.Tensor, enc: PixelEncoding | None) -> torch.Tensor:
        if enc is None:
            return tensor
        pixels = torch.from_numpy(np.ascontiguousarray(feed[name]))
        return pixels if nhwc_uint8 else pixels.to(torch.float32)   # Core ML traces float levels

    def converted(rows: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [_artifact_arrays(r, names, in_encs, layout) for r in rows]
    return replace(request, module=module, example_inputs=tuple(map(example, names, request.example_inputs, in_encs)),
                   sample_inputs=converted(request.sample_inputs), calibration=converted(request.calibration))
