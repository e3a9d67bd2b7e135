"""`edgeport run` without a converter: bad input, and the global-task outputs on a stand-in runtime."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeport.cli import main
from edgeport.photo.task_outputs import resized_run
from edgeport.models.spec import PhotoPolicy, TensorContract
from edgeport.runtimes.pixels import PixelEncoding


def test_run_refuses_what_it_cannot_run_with_one_line(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    assert main(["run", str(tmp_path), str(photo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an exported artifact" in err[0]
    assert main(["run", str(tmp_path), str(tmp_path / "missing.jpg")]) == 2
    assert "no such image" in capsys.readouterr().err


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height: a few dozen bytes (a decompression bomb's first step)."""
    import struct
    import zlib

    from edgeport.photo.png_stream import _SIGNATURE, _chunk

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_in_one_line_before_decoding(tmp_path, capsys):
    import pytest

    from edgeport.errors import UsageError
    from edgeport.photo.run import read_photo

    bomb = _png_declaring(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(UsageError, match=r"bomb.png declares more pixels than Pillow decodes safely .*downscale"):
        read_photo(bomb, "RGB")


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    import pytest

    from edgeport.errors import UsageError
    from edgeport.photo.run import read_photo

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(UsageError, match="cannot read .*notes.jpg as an image"):
        read_photo(bad, "RGB")


@dataclass
class _Manifest:
    outputs: tuple
    model: Any


@dataclass
class _Runtime:
    engine: str = "stand-in"
    fed: list = field(default_factory=list)

    def run(self, inputs):
        self.fed.append(inputs)
        sal = np.zeros((1, 1, 24, 32), np.float32)
        sal[0, 0, 4:10, 20:28] = 1.0            # a salient patch top right
        return {"saliency": sal, "depth": np.linspace(1, 5, 24 * 32, dtype=np.float32).reshape(1, 1, 24, 32)}


def test_global_tasks_see_the_resized_photo_and_write_a_heatmap_with_crops_and_a_depth_png(tmp_path):
    @dataclass
    class Art:
        image: Any
        runtime: Any
        manifest: Any
        spec: Any = type("Spec", (), {"photo": PhotoPolicy(mode="resize")})()

        def feed(self, pixels, extras):
            return {"image": self.image.pixels.from_pixels(pixels)}

    image = TensorContract("image", (1, 3, 24, 32), pixels=PixelEncoding.unit())
    outs = (TensorContract("saliency", (1, 1, 24, 32), value_range=(0, float("inf"))),
            TensorContract("depth", (1, 1, 24, 32), value_range=(0, float("inf"))))
    runtime = _Runtime()
    photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for task in ("saliency", "depth"):
        art = Art(image, runtime, _Manifest(outs, type("M", (), {"task": task})()))
        written, details = resized_run(art, photo, ((), ()), lambda suffix: tmp_path / f"{task}{suffix}.png")
        assert runtime.fed[-1]["image"].shape == (1, 3, 24, 32)
        shown = [Path(w).name for w in written]
        if task == "saliency":
            assert "saliency.saliency.png" in shown and set(details["crops"]) == {"1:1", "4:5", "16:9"}
            x, y, w, h = details["crops"]["1:1"]
            assert (w, h) == (120, 120) and x == 40   # the square holding the patch sits at the right edge
            assert np.asarray(Image.open(tmp_path / "saliency.saliency.png")).shape == (120, 160, 3)
        else:
            depth = np.asarray(Image.open(tmp_path / "depth.depth.png"))
            assert depth.shape == (120, 160) and depth.dtype.kind in "iu" and depth.max() > 60000
            assert details["depth_min"] < details["depth_max"]
    json.dumps(details)   # the run's JSON carries them


def test_model_feeds_build_every_input_from_a_photo_its_mask_and_clicks():
    from edgeport.models import get_spec

    pixels = np.random.default_rng(1).integers(0, 256, (1, 4, 32, 32), dtype=np.uint8)
    pixels[:, 3] = 0
    pixels[:, 3, 8:16, 8:16] = 255                                    # the hole
    pconv = get_spec("inpaint-pconv").photo.feed(pixels, {})
    assert pconv["mask"].shape == (1, 3, 32, 32) and pconv["mask"][0, :, 10, 10].tolist() == [0, 0, 0]
    assert pconv["image"][0, :, 10, 10].tolist() == [0, 0, 0] and pconv["image"][0, 0, 0, 0] == pixels[0, 0, 0, 0] / 255
    gmcnn = get_spec("inpaint-gmcnn").photo.feed(pixels, {})["image_and_mask"]
    assert gmcnn.shape == (1, 4, 32, 32) and gmcnn[0, 3, 10, 10] == 1 and gmcnn[0, 3, 0, 0] == 0
    seg = get_spec("interactive-segmenter").photo.feed(pixels[:, :3], {"clicks": ([(5.0, 20.0)], [])})
    assert seg["clicks"].shape == (1, 2, 32, 32) and seg["clicks"][0, 0, 5, 20] == 0 and seg["clicks"][0, 1].min() == 255
