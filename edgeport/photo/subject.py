"""The subject of a photo, as a second artifact finds it: a segmenter answers a click (the object under it), a
saliency net answers without one (the most salient region: the connected area around the saliency peak that
stays above half of it). Either way a bool mask at the photo's size."""
from __future__ import annotations

import numpy as np

from edgeport.errors import UsageError
from edgeport.photo.artifact import LoadedArtifact
from edgeport.photo.task_outputs import Clicks, model_outputs, resized_values

SALIENT_SHARE = 0.5   # of the peak saliency: the region kept around the peak


def subject_mask(finder: LoadedArtifact, photo: np.ndarray, click: tuple[float, float] | None) -> np.ndarray:
    """HxW bool over an HxWxC uint8 photo. Raises UsageError for an artifact of another task."""
    task = finder.manifest.model.task
    if task not in ("segment", "saliency"):
        raise UsageError(f"--subject-model takes a segmenter or a saliency artifact; "
                         f"{finder.manifest.model.name} is a {task} model")
    if task == "segment" and click is None:
        raise UsageError(f"{finder.manifest.model.name} segments what you click: give --select subject:X,Y")
    clicks: Clicks = ((click,), ()) if click is not None and task == "segment" else ((), ())
    got = model_outputs(finder, photo, clicks)
    first = finder.manifest.outputs[0]
    values = resized_values(got[first.name], photo.shape[:2])
    if task == "segment":
        return values > 0.5
    return _salient_region(values)


def _salient_region(saliency: np.ndarray) -> np.ndarray:
    from scipy.ndimage import label

    peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    regions, _ = label(saliency >= SALIENT_SHARE * float(saliency[peak]))
    return regions == regions[peak]
