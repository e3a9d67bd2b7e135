"""What a zoo entry promises: how to build it, what goes in and out, and how close an export must stay."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from edgeport.runtimes.pixels import PixelEncoding

if TYPE_CHECKING:
    from torch import nn

    from edgeport.models.weights import OfficialWeights


@dataclass(frozen=True)
class TensorContract:
    """One input or output as an app must feed or read it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "RGB"
    layout: str = "NCHW"
    normalization: str = "pixel / 255"
    description: str = ""
    # set: this tensor is a picture, value = (pixel / 255 - mean) / std, and image I/O compiles that into the
    # artifact; None: a tensor (a mask probability, click maps, depth), fed and read as float32
    pixels: PixelEncoding | None = None

    def with_hw(self, height: int, width: int) -> "TensorContract":
        if self.layout != "NCHW" or len(self.shape) != 4:
            raise ValueError(f"{self.name}: only NCHW inputs take a new height and width")
        return replace(self, shape=(self.shape[0], self.shape[1], height, width))

    def with_shape(self, shape: Sequence[int]) -> "TensorContract":
        return replace(self, shape=tuple(int(s) for s in shape))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
            # an unbounded side (e.g. a saliency map's top) is written as null
            "value_range": [v if math.isfinite(v) else None for v in self.value_range],
            "color_order": self.color_order,
            "layout": self.layout, "normalization": self.normalization, "description": self.description,
            "pixels": self.pixels.to_dict() if self.pixels else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TensorContract":
        lo, hi = d.get("value_range") or (0.0, 1.0)
        known = {k: d[k] for k in ("dtype", "color_order", "layout", "normalization", "description") if k in d}
        return cls(d["name"], tuple(int(s) for s in d["shape"]),
                   value_range=(-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)),
                   pixels=PixelEncoding.from_dict(d.get("pixels")), **known)


NOISE_PREFIX = "random:"
GATED_SAMPLES = ("all", "photos")


def is_noise_sample(label: str) -> bool:
    """The seeded uniform-noise input every input maker adds after the photos."""
    return label.startswith(NOISE_PREFIX)


@dataclass(frozen=True)
class ParityGate:
    """The worst gated sample must clear every bound that is set.

    samples="all": every sample gates, the uniform noise included (conversion fidelity: fp32, fp16, module
    rewrites). samples="photos": only in-distribution samples gate; a calibrated or lossy recipe is made for
    photos, and a trained net's noise response is reported beside the verdict, never hidden.
    """

    min_psnr_db: float
    min_cosine: float | None = None
    samples: str = "all"

    def __post_init__(self) -> None:
        if self.samples not in GATED_SAMPLES:
            raise ValueError(f"ParityGate.samples must be one of {GATED_SAMPLES}, not {self.samples!r}")

    def gates(self, label: str) -> bool:
        return self.samples == "all" or not is_noise_sample(label)

    def to_dict(self) -> dict[str, Any]:
        return {"min_psnr_db": self.min_psnr_db, "min_cosine": self.min_cosine, "samples": self.samples}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ParityGate":
        return cls(min_psnr_db=float(d["min_psnr_db"]), min_cosine=d.get("min_cosine"),
                   samples=d.get("samples", "all"))


@dataclass(frozen=True)
class ParityInput:
    """A named set of input arrays (NCHW, contract dtype) used to compare an export with PyTorch."""

    label: str
    arrays: Mapping[str, np.ndarray]


# (photo pixels 1xCxhxw uint8 in the input's colour order, plus a last channel holding the hole mask (255 =
# hole) when the model needs one; extras: {"clicks": (positive, negative) as (y, x) input pixels}) -> the
# model's inputs as contract arrays. For models whose inputs are more than one picture.
PhotoFeed = Callable[[np.ndarray, Mapping[str, Any]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class PhotoPolicy:
    """How `edgeport run` fits a photo of any size to a fixed-size model. "tile": pixel-local restoration,
    tiled with `overlap` input pixels shared by neighbours, the `margin` nearest a tile's inner edge unweighted
    (edgeport/photo/tiling.py); "resize": a global task (saliency, depth, a click mask) sees the whole photo resized
    to its input, and its outputs are resized back."""

    mode: str = "tile"
    overlap: int = 32
    margin: int = 8
    needs: tuple[str, ...] = ()          # what `run` must be given besides the photo: "mask", "clicks"
    feed: PhotoFeed | None = None        # None: the photo is the model's one picture input

    def __post_init__(self) -> None:
        if self.mode not in ("tile", "resize"):
            raise ValueError(f"PhotoPolicy.mode must be tile or resize, not {self.mode!r}")


@dataclass(frozen=True)
class ModelMetadata:
    paper: str
    upstream: str
    notes: str = ""


# (label, HxWx3 uint8 RGB): a photo an input maker fits to the contracts
Photo = tuple[str, np.ndarray]
# factory(**config) -> nn.Module; loader(module, path) loads weights in place, raising CheckpointError;
# input maker(contracts, seed, photos=None) -> one input per photo (the parity photos by default) plus a
# seeded random one labelled "random:..."; calibration passes its own photos.
Factory = Callable[..., Any]
WeightsLoader = Callable[[Any, Path], None]
InputMaker = Callable[..., list[ParityInput]]
# (module, example input batch built from the parity photos) -> None; see models.random_init.OutputInit
RandomInit = Callable[[Any, Sequence[Any]], None]
# (PyTorch outputs, runtime outputs) of one sample -> named task scores, e.g. {"mask_iou": 0.998}
TaskMetric = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, float]]
# (config, height, width) -> what is wrong with that input size, or None
SizeRule = Callable[[Mapping[str, Any], int, int], "str | None"]


def multiple_of(n: int | Callable[[Mapping[str, Any]], int], minimum: int = 1) -> SizeRule:
    """Height and width must be multiples of n (a number, or one read from the config) and at least minimum."""
    def rule(config: Mapping[str, Any], h: int, w: int) -> str | None:
        k = n(config) if callable(n) else n
        if h % k or w % k or h < minimum or w < minimum:
            return f"input height and width must be multiples of {k}" + (f" and at least {minimum}" if minimum > 1 else "") + f", not {h}x{w}"
        return None
    return rule


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    factory: Factory
    inputs: tuple[TensorContract, ...]
    outputs: tuple[TensorContract, ...]
    load_weights: WeightsLoader
    make_inputs: InputMaker
    metadata: ModelMetadata
    config: Mapping[str, Any] = field(default_factory=dict)
    # per-model overrides of a recipe's gate, by precision name (quantize/recipes.py holds the defaults)
    gates: Mapping[str, ParityGate] = field(default_factory=dict)
    task: str = "image-to-image"
    # Applied after seeded construction when no weights are given, so that parity is measured on outputs
    # that vary (a default-initialised net may sit at its output clamp almost everywhere).
    random_init: RandomInit | None = None
    size_rule: SizeRule | None = None
    task_metric: TaskMetric | None = None
    # how get_spec() finds this spec again (a custom model's "abs/path.py:factory"); None: its name
    reference: str | None = None
    # the upstream release `--weights official` resolves to (models.weights.OfficialWeights); None: none known
    official: OfficialWeights | None = None
    # what the architecture is, for the manifest: {"id", "hyperparameters", ...}; None: the factory and config
    architecture: Mapping[str, Any] | None = None
    photo: PhotoPolicy = PhotoPolicy()

    def architecture_record(self, config: Mapping[str, Any]) -> dict[str, Any]:
        if self.architecture is not None:
            return dict(self.architecture)
        name = getattr(self.factory, "__name__", type(self.factory).__name__)
        return {"id": name, "hyperparameters": {**self.config, **config}}

    def check_config(self, overrides: Mapping[str, Any]) -> None:
        unknown = sorted(set(overrides) - set(self.config))
        if unknown:
            from edgeport.models.errors import ModelError
            raise ModelError(
                f"{self.name} has no setting {', '.join(unknown)}; settings: {', '.join(sorted(self.config)) or 'none'}"
            )

    def build(self, **overrides: Any) -> nn.Module:
        self.check_config(overrides)
        return self.factory(**{**self.config, **overrides})
