"""Any restoration checkpoint through spandrel: detection, the torchvision stand-in, and the export."""
import json
import sys

import pytest
import torch

from edgeport.models import CheckpointError, get_spec
from edgeport.models.spandrel_models import detect, import_spandrel, reference_for


def _esrgan_checkpoint(path, **kwargs):
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    model = ESRGAN(**{"num_filters": 16, "num_blocks": 1, "scale": 4, **kwargs})
    for p in model.parameters():
        p.data.mul_(0.5)      # seeded weights scaled so the clamped output is not mostly 0 or 1
    torch.save({"params_ema": model.state_dict()}, path)
    return path


def test_stand_in_serves_spandrel_only_and_leaves_no_torchvision_behind():
    spandrel = import_spandrel()
    assert "torchvision" not in sys.modules and "torchvision.transforms.functional" not in sys.modules
    from spandrel.architectures.LaMa.__arch import LaMa as lama_module   # imported under the stand-in
    with pytest.raises(Exception, match="no torchvision installs beside the torch 2.13 CPU wheel"):
        lama_module.rotate(torch.zeros(1), 0.0)
    assert spandrel.__version__ == "0.4.2"


def test_detects_architecture_hyperparameters_and_contract(tmp_path):
    path = _esrgan_checkpoint(tmp_path / "4x-Tiny.pth")
    spec = get_spec(reference_for(path))
    assert spec.name == "4x-tiny" and spec.reference == f"spandrel:{path.resolve()}"
    arch = spec.architecture_record({})
    assert arch["id"] == "ESRGAN" and arch["scale"] == 4 and arch["hyperparameters"]["num_filters"] == 16
    assert arch["detected_by"] == "spandrel 0.4.2" and "MIT" in arch["license"]
    assert spec.inputs[0].shape == (1, 3, 64, 64) and spec.outputs[0].shape == (1, 3, 256, 256)
    assert spec.size_rule({}, 1, 1) is not None and spec.size_rule({}, 48, 40) is None


def test_unknown_state_dict_and_torchvision_architectures_are_refused(tmp_path, monkeypatch):
    torch.save({"some.weight": torch.zeros(3, 3)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="does not recognise the architecture"):
        detect(tmp_path / "odd.pth")
    import edgeport.models.spandrel_models as sm

    monkeypatch.setattr(sm, "NEEDS_TORCHVISION", ("ESRGAN",))
    with pytest.raises(CheckpointError, match="ESRGAN model: spandrel runs it through torchvision"):
        detect(_esrgan_checkpoint(tmp_path / "e.pth"))


def test_pickle_that_runs_code_is_refused_before_spandrel_sees_it(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Boom()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        detect(tmp_path / "evil.pth")


@pytest.mark.e2e
def test_detected_checkpoint_exports_without_a_model_name(tmp_path, capsys):
    from edgeport.cli import main

    path = _esrgan_checkpoint(tmp_path / "4x-Tiny.pth")
    out = tmp_path / "out"
    code = main(["export", "--weights", str(path), "--to", "onnx,coreml", "--recipe", "fp32",
                 "--input-size", "24x24", "--out", str(out), "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert [r["status"] for r in summary["rows"]] == ["pass"] * 2
    assert all(r["photo_psnr_db"] is None or r["photo_psnr_db"] > 60 for r in summary["rows"])
    manifest = json.loads((out / "4x-tiny" / "onnx-fp32" / "manifest.json").read_text())
    assert manifest["model"]["architecture"]["id"] == "ESRGAN" and manifest["source"]["model"].startswith("spandrel:")
    assert main(["check", str(out), "--quiet"]) == 0      # the reference rebuilds from the manifest alone
