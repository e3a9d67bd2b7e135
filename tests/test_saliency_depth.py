import numpy as np
import pytest
import torch

from edgeport.models import get_spec
from edgeport.models.backbones.mobilenet_v1 import MobileNetV1
from edgeport.models.backbones.resnet import ResNet50Trunk
from edgeport.models.depth.fcrn import FastUpConv, unpool_conv5x5_reference
from edgeport.models.profile import profile_model
from edgeport.models.saliency import saliency_agreement, smart_crop
from edgeport.models.source import instantiate, source_for


def _brute_force_crop(sal, aspect):
    h_img, w_img = sal.shape
    w = int(min(w_img, round(h_img * aspect)))
    h = int(min(h_img, round(w / aspect)))
    best, box = -1.0, None
    for y in range(h_img - h + 1):
        for x in range(w_img - w + 1):
            score = sal[y:y + h, x:x + w].sum()
            if score > best:
                best, box = score, (x, y, w, h)
    return box


@pytest.mark.parametrize("aspect", [1.0, 16 / 9, 4 / 5, 3.0])
def test_smart_crop_matches_brute_force(aspect):
    rng = np.random.default_rng(int(aspect * 10))
    sal = rng.random((24, 40)) ** 4
    assert smart_crop(sal, aspect) == _brute_force_crop(sal, aspect)


def test_smart_crop_finds_the_salient_corner():
    sal = np.zeros((60, 100))
    sal[40:60, 80:100] = 1.0
    x, y, w, h = smart_crop(sal, 1.0)
    assert (w, h) == (60, 60) and x + w == 100 and y == 0   # square as large as the image, pushed right


def test_saliency_agreement_is_one_for_identical_maps_and_drops_when_the_peak_moves():
    sal = np.zeros((1, 1, 30, 40), np.float32)
    sal[0, 0, 5, 5] = 1.0
    assert all(v == 1.0 for v in saliency_agreement({"saliency": sal}, {"saliency": sal}).values())
    moved = np.zeros_like(sal)
    moved[0, 0, 25, 35] = 1.0
    scores = saliency_agreement({"saliency": sal}, {"saliency": moved})
    assert scores["peak_agreement"] == 0.0 and scores["crop_iou_1x1"] < 1.0


@pytest.mark.parametrize("stride,size", [(8, (30, 40)), (16, (15, 20)), (32, (8, 10))])
def test_mobilenet_output_stride_is_kept_by_dilation(stride, size):
    with torch.device("meta"):
        out = MobileNetV1(output_stride=stride)(torch.empty(1, 3, 240, 320))
    assert tuple(out.shape[-2:]) == size and out.shape[1] == 1024


def test_published_sizes():
    assert profile_model(MobileNetV1, [(1, 3, 224, 224)]).params == pytest.approx(3.21e6, rel=0.01)
    r50 = profile_model(ResNet50Trunk, [(1, 3, 224, 224)])
    assert r50.params == pytest.approx(23.51e6, rel=0.001) and r50.macs == pytest.approx(4.09e9, rel=0.01)
    fcrn = get_spec("depth-fcrn")
    assert profile_model(fcrn.build, [(1, 3, 228, 304)]).params == pytest.approx(63.6e6, rel=0.002)
    sam = get_spec("saliency-mobilenet")
    assert profile_model(sam.build, [(1, 3, 240, 320)]).params == pytest.approx(45.0e6, rel=0.01)
    phone = profile_model(get_spec("depth-fcrn-mobilenet").build, [(1, 3, 228, 304)])
    assert phone.params * 4 / 1e6 < 20   # fp32 bytes: about the seed app's 18 MB


def test_fast_up_convolution_equals_unpooling_then_5x5_conv():
    torch.manual_seed(0)
    layer = FastUpConv(3, 4)
    x = torch.randn(2, 3, 5, 7)
    assert torch.allclose(layer(x), unpool_conv5x5_reference(layer, x), atol=1e-5)


def test_depth_encoder_loads_torchvision_resnet50_checkpoint(tmp_path):
    torch.manual_seed(2)
    trunk = ResNet50Trunk().state_dict()
    state = {**trunk, "fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)}
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    torch.save(state, tmp_path / "resnet50.pth")
    spec = get_spec("depth-fcrn")
    model = instantiate(spec, source_for(spec, {}, tmp_path / "resnet50.pth", seed=0))
    assert torch.equal(model.encoder.layer4[2].conv3.weight, trunk["layer4.2.conv3.weight"])
