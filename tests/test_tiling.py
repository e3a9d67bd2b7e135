"""Tiling, the streamed PNG and the pixel encoding, on plain arrays (no converter, no runtime)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeport.photo.png_stream import PngStream, write_png
from edgeport.photo.tiling import TilePlan, tiled_rows
from edgeport.runtimes.pixels import PixelEncoding, imagenet


def _local_x2(pixels: np.ndarray, radius: int = 2) -> np.ndarray:
    """A stand-in 'model' with a known receptive field: a (2r+1)^2 box blur with zero padding, then x2
    nearest upscaling; 1xCxhxw uint8 -> float levels."""
    x = pixels[0].astype(np.float64)
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius)))
    h, w = x.shape[1:]
    blur = sum(padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * radius + 1) for dx in range(2 * radius + 1))
    blur /= (2 * radius + 1) ** 2
    return blur.repeat(2, axis=1).repeat(2, axis=2)[None]


def _photo(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _tiled(photo: np.ndarray, plan: TilePlan) -> np.ndarray:
    return np.concatenate(list(tiled_rows(photo, plan, (2.0, 2.0), _local_x2, 3)))


def test_tiles_whose_margin_covers_the_receptive_field_reproduce_the_untiled_result_exactly():
    photo = _photo(70, 93)   # not a multiple of the stride: the last tiles sit flush with the edges
    plan = TilePlan(32, 32, overlap=12, margin=3)   # margin 3 > radius 2
    whole = np.clip(np.rint(_local_x2(photo.transpose(2, 0, 1)[None])[0]), 0, 255).transpose(1, 2, 0)
    assert np.array_equal(_tiled(photo, plan), whole.astype(np.uint8))


def test_a_margin_inside_the_receptive_field_leaves_errors_only_where_tiles_overlap():
    photo = _photo(64, 64)
    plan = TilePlan(24, 24, overlap=8, margin=0)
    whole = np.clip(np.rint(_local_x2(photo.transpose(2, 0, 1)[None])[0]), 0, 255).transpose(1, 2, 0)
    wrong = np.abs(_tiled(photo, plan).astype(float) - whole).max(axis=-1) > 0
    starts = plan.starts(64, 24)
    band = np.zeros(64, bool)
    for prev, nxt in zip(starts, starts[1:]):
        band[nxt:prev + 24] = True   # input pixels two tiles share
    in_band = np.repeat(band, 2)     # output pixels at x2
    assert wrong.any() and not (wrong & ~(in_band[:, None] | in_band[None, :])).any()


def test_skipped_tiles_leave_every_pixel_of_the_tiles_that_run_as_a_full_run_gives_it():
    """A selection runs only the tiles touching it: inside the region every covering tile runs, so the
    values equal the full run's exactly; outside every tile is skipped and the rows are 0."""
    photo, plan = _photo(150, 200), TilePlan(32, 32, overlap=12, margin=3)
    full = _tiled(photo, plan)
    ran = []

    def wanted(y, x, h, w):   # the region: input rows 70-80, columns 90-110
        touches = y < 80 and y + h > 70 and x < 110 and x + w > 90
        ran.append(touches)
        return touches
    part = np.concatenate(list(tiled_rows(photo, plan, (2.0, 2.0), _local_x2, 3, wanted=wanted)))
    assert part.shape == full.shape and 0 < sum(ran) < len(ran)
    assert np.array_equal(part[140:160, 180:220], full[140:160, 180:220])
    assert not part[:60].any() and not part[:, -60:].any()


def test_rows_stream_out_in_strips_and_a_photo_smaller_than_a_tile_is_padded_then_cropped():
    blocks = list(tiled_rows(_photo(100, 40), TilePlan(32, 32, 8, 2), (2.0, 2.0), _local_x2, 3))
    assert len(blocks) == 4 and sum(b.shape[0] for b in blocks) == 200   # one strip per tile row
    small = list(tiled_rows(_photo(10, 7), TilePlan(16, 16, 8, 2), (2.0, 2.0), _local_x2, 3))
    assert np.concatenate(small).shape == (20, 14, 3)


def test_tile_plan_refuses_an_overlap_that_cannot_blend():
    with pytest.raises(ValueError, match="2 x margin < overlap < tile"):
        TilePlan(32, 32, overlap=32, margin=4)
    with pytest.raises(ValueError, match="2 x margin < overlap < tile"):
        TilePlan(32, 32, overlap=8, margin=4)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_stream_round_trips_through_pillow_and_leaves_nothing_when_interrupted(tmp_path, channels):
    image = np.random.default_rng(1).integers(0, 256, (37, 29, channels), dtype=np.uint8)
    with PngStream(tmp_path / "a.png", 37, 29, channels) as png:
        png.write(image[:20])
        png.write(image[20:])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")).reshape(image.shape), image)
    with pytest.raises(ValueError, match="rows written"):
        with PngStream(tmp_path / "b.png", 37, 29, channels) as png:
            png.write(image[:5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    depth = np.random.default_rng(2).integers(0, 65536, (9, 11), dtype=np.uint16)
    write_png(tmp_path / "d.png", depth)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")).astype(np.uint16), depth)


def test_pixel_encodings_round_trip_whole_levels_and_round_half_to_even():
    levels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    for enc in (PixelEncoding.unit(), PixelEncoding.symmetric(), imagenet(), imagenet("BGR")):
        assert np.array_equal(enc.to_pixels(enc.from_pixels(levels)), levels)
    unit = PixelEncoding.unit("GRAY")
    assert unit.to_pixels(np.array([[[[0.5 / 255, 1.5 / 255, -0.2, 1.7]]]])).tolist() == [[[[0, 2, 0, 255]]]]
    with pytest.raises(ValueError, match="3 means"):
        PixelEncoding("RGB", (0.0,), (1.0,))
