"""Saliency for smart cropping: SAM with a MobileNet v1 backbone (IMG.LY swapped ResNet-50 for MobileNet)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from edgeport.models.checkpoint import load_state_dict_file
from edgeport.models.random_init import OutputInit
from edgeport.models.samples import photo_inputs
from edgeport.models.saliency.sam import SAMSaliency
from edgeport.models.spec import ModelMetadata, ModelSpec, PhotoPolicy, TensorContract, multiple_of
from edgeport.runtimes.pixels import PixelEncoding


def smart_crop(saliency: np.ndarray, aspect: float) -> tuple[int, int, int, int]:
    """The (x, y, width, height) window of the given aspect (width / height) holding the most saliency.

    The window is as large as the image allows (w = min(W, H * aspect), h = w / aspect); every position is
    scored with a summed-area table, so the search is O(H * W)."""
    sal = np.asarray(saliency, dtype=np.float64).reshape(saliency.shape[-2:])
    height, width = sal.shape
    w = int(min(width, round(height * aspect)))
    h = int(min(height, round(w / aspect)))
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = sal.cumsum(0).cumsum(1)
    scores = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(x), int(y), w, h


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


CROP_ASPECTS = {"1x1": 1.0, "16x9": 16 / 9, "4x5": 4 / 5}


def saliency_agreement(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Peak agreement: how salient the runtime's peak is under PyTorch's map (1 = as salient as PyTorch's own
    peak; robust to near-ties that bilinear upsampling leaves at the top), and smart-crop box IoU per aspect."""
    ref, got = reference["saliency"][0, 0], actual["saliency"][0, 0]
    qy, qx = np.unravel_index(int(np.argmax(got)), got.shape)
    spread = float(ref.max() - ref.min()) or 1.0
    scores = {"peak_agreement": 1.0 - float(ref.max() - ref[qy, qx]) / spread}
    for name, aspect in CROP_ASPECTS.items():
        scores[f"crop_iou_{name}"] = _box_iou(smart_crop(ref, aspect), smart_crop(got, aspect))
    return scores


# Default init erases the input (BatchNorm at mean 0, variance 1: the same map for every photo); attention is a
# softmax over all positions, so the LSTM sees X / (H*W) and a trained net's input-to-state conv W is large;
# the ReLU'd head outputs 0 almost everywhere. Scale reduce, the LSTM's W and U, and the head, but not the
# attention convs: with those at unit gain too the map was chaotic (a 1e-6 input change moved it to 27 dB).
varied_saliency_init = OutputInit("predict", mean=1.0, std=0.5,
                                  unit_variance_only=("reduce.0", "lstm.W", "lstm.U", "conv1", "conv2"))


def _spec(name: str, stride: int, summary: str) -> ModelSpec:
    return ModelSpec(
        name=name, summary=summary, factory=SAMSaliency,
        config={"output_stride": stride, "width": 1.0, "lstm_channels": 512, "steps": 4, "priors": 16},
        inputs=(TensorContract("image", (1, 3, 240, 320), description="RGB photo in [0, 1]",
                                pixels=PixelEncoding.unit()),),
        outputs=(TensorContract("saliency", (1, 1, 240, 320), value_range=(0.0, float("inf")), color_order="map",
                                description="saliency map (>= 0, unnormalised); feed it to smart_crop()"),),
        load_weights=load_state_dict_file, make_inputs=photo_inputs, task="saliency", photo=PhotoPolicy(mode="resize"),
        task_metric=saliency_agreement, random_init=varied_saliency_init,
        size_rule=multiple_of(lambda cfg: cfg["output_stride"]),
        metadata=ModelMetadata(
            paper="Cornia et al. 2018, Predicting Human Eye Fixations via an LSTM-based Saliency Attentive Model",
            upstream="https://github.com/marcellacornia/sam (Keras; weights here use edgeport's PyTorch layout)"),
    )


SPECS = (
    _spec("saliency-mobilenet", 8, "SAM saliency: MobileNet v1 (output stride 8), Attentive ConvLSTM x4, priors"),
    _spec("saliency-mobilenet-os16", 16, "SAM saliency, MobileNet v1 at output stride 16 (~4x fewer MACs)"),
)
