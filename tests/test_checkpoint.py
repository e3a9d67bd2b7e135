"""Loaders on checkpoints built here with the upstream key layout (no weights can be downloaded)."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from edgeport.models import CheckpointError, get_spec
from edgeport.models.source import instantiate, source_for

SMALL = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4}


def _upstream_state(seed: int):
    torch.manual_seed(seed)
    return get_spec("realesrgan-x4plus").build(**SMALL).state_dict()


def _load(path):
    spec = get_spec("realesrgan-x4plus")
    return instantiate(spec, source_for(spec, SMALL, path, seed=0))


def test_params_ema_is_preferred_over_params(tmp_path):
    ema, plain = _upstream_state(1), _upstream_state(2)
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": ema, "params": plain}, path)
    model = _load(path)
    assert torch.equal(model.state_dict()["conv_first.weight"], ema["conv_first.weight"])


def test_params_alone_and_bare_state_dict_load(tmp_path):
    state = _upstream_state(3)
    torch.save({"params": state}, tmp_path / "a.pth")
    torch.save(state, tmp_path / "b.pth")
    for name in ("a.pth", "b.pth"):
        assert torch.equal(_load(tmp_path / name).state_dict()["conv_last.bias"], state["conv_last.bias"])


def test_safetensors_loads(tmp_path):
    state = {k: v.contiguous() for k, v in _upstream_state(4).items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    assert torch.equal(_load(tmp_path / "w.safetensors").state_dict()["body.0.rdb3.conv5.weight"],
                       state["body.0.rdb3.conv5.weight"])


def test_missing_empty_truncated_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        _load(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        _load(tmp_path / "empty.pth")
    torch.save({"params_ema": _upstream_state(5)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _load(tmp_path / "cut.pth")
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        _load(tmp_path / "junk.safetensors")


def test_key_and_shape_mismatches_name_the_first_ones(tmp_path):
    state = _upstream_state(6)
    state["extra.weight"] = torch.zeros(1)
    del state["conv_hr.bias"]
    state["conv_first.weight"] = torch.zeros(8, 4, 3, 3)
    torch.save({"params_ema": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        _load(tmp_path / "bad.pth")
    text = str(err.value)
    assert "missing conv_hr.bias" in text and "unexpected extra.weight" in text
    assert "conv_first.weight (8, 4, 3, 3) vs (8, 3, 3, 3)" in text


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"params_ema": payload}, fh)
    with pytest.raises(CheckpointError, match="refused to load"):
        _load(path)
    assert not marker.exists()


def test_torch_save_of_an_object_that_calls_os_system_names_the_callable(tmp_path):
    """torch.save's zip: the message says code would run and names it (read from data.pkl, never unpickled)."""
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"w": torch.zeros(2)}, "extra": payload}, path)
    with pytest.raises(CheckpointError) as caught:
        _load(path)
    message = str(caught.value)
    assert "would run code" in message and f"{os.system.__module__}.system" in message, message
    assert "corrupt" not in message and "weights_only" not in message and len(message) < 300
    assert not marker.exists()


def test_checkpoint_changed_after_export_is_detected(tmp_path):
    spec = get_spec("realesrgan-x4plus")
    path = tmp_path / "w.pth"
    torch.save({"params_ema": _upstream_state(7)}, path)
    source = source_for(spec, SMALL, path, seed=0)
    torch.save({"params_ema": _upstream_state(8)}, path)
    with pytest.raises(CheckpointError, match="changed since export"):
        instantiate(spec, source)
