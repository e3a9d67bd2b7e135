import numpy as np
import pytest
import torch

from edgeport.models import get_spec
from edgeport.models.segmenter import click_maps, mask_iou
from edgeport.models.segmenter.squeezenet import squeezenet1_1_features
from edgeport.models.source import instantiate, source_for


def test_click_maps_follow_xu_et_al_convention():
    maps = click_maps(8, 10, positive=[(2, 3)], negative=[])
    assert maps.shape == (1, 2, 8, 10) and maps.dtype == np.float32
    assert maps[0, 0, 2, 3] == 0.0 and maps[0, 0, 2, 7] == pytest.approx(4.0)
    assert maps[0, 0, 5, 7] == pytest.approx(5.0)            # Euclidean: 3-4-5
    assert np.all(maps[0, 1] == 255.0)                         # no negative clicks: all 255
    far = click_maps(400, 400, [(0, 0)], [(399, 399)])
    assert far.max() == 255.0 and far[0, 0, 399, 399] == 255.0  # truncated at 255
    two = click_maps(5, 5, [(0, 0), (4, 4)], [])
    assert two[0, 0, 4, 4] == 0.0 and two[0, 0, 0, 0] == 0.0    # nearest of several clicks


def _torchvision_squeezenet_state(seed=0):
    torch.manual_seed(seed)
    state = {f"features.{k}": v for k, v in squeezenet1_1_features(3).state_dict().items()}
    state["classifier.1.weight"] = torch.randn(1000, 512, 1, 1)
    state["classifier.1.bias"] = torch.randn(1000)
    return state


def test_torchvision_squeezenet_checkpoint_loads_with_click_channels_zero_filled(tmp_path):
    state = _torchvision_squeezenet_state()
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.3.squeeze.weight"].shape == (16, 64, 1, 1)
    torch.save(state, tmp_path / "squeezenet1_1.pth")
    spec = get_spec("interactive-segmenter")
    model = instantiate(spec, source_for(spec, {}, tmp_path / "squeezenet1_1.pth", seed=0))
    first = model.state_dict()["features.0.weight"]
    assert first.shape == (64, 5, 3, 3)
    assert torch.equal(first[:, :3], state["features.0.weight"]) and not first[:, 3:].any()
    assert torch.equal(model.state_dict()["features.12.expand3x3.weight"], state["features.12.expand3x3.weight"])
    # zero-filled click channels: the backbone's first layer ignores the clicks until fine-tuned
    image = torch.randn(1, 3, 64, 64)
    a = model.features[0](torch.cat([image, torch.zeros(1, 2, 64, 64)], 1))
    b = model.features[0](torch.cat([image, torch.full((1, 2, 64, 64), 255.0)], 1))
    assert torch.equal(a, b)


def test_full_segmenter_checkpoint_loads_strictly(tmp_path):
    spec = get_spec("interactive-segmenter")
    torch.manual_seed(5)
    state = spec.build().state_dict()
    torch.save(state, tmp_path / "seg.pth")
    model = instantiate(spec, source_for(spec, {}, tmp_path / "seg.pth", seed=0))
    assert torch.equal(model.state_dict()["refine.2.merge.0.weight"], state["refine.2.merge.0.weight"])


def test_odd_feature_sizes_at_512_are_resized_to_each_skip():
    model = get_spec("interactive-segmenter").build().eval()
    sizes = []
    x = torch.zeros(1, 5, 512, 512)
    with torch.no_grad():
        for i, layer in enumerate(model.features):
            x = layer(x)
            if i in (1, 4, 7, 12):
                sizes.append(x.shape[-1])
        out = model(torch.zeros(1, 3, 512, 512), torch.full((1, 2, 512, 512), 255.0))
    assert sizes == [255, 127, 63, 31] and out.shape == (1, 1, 512, 512)


def test_mask_iou():
    a = np.zeros((1, 1, 4, 4), np.float32)
    a[..., :2, :] = 0.9
    b = a.copy()
    b[..., 0, :] = 0.1
    assert mask_iou({"mask": a}, {"mask": b})["mask_iou"] == pytest.approx(0.5)
    assert mask_iou({"mask": a * 0}, {"mask": b * 0})["mask_iou"] == 1.0
