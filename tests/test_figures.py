"""The parity picture draws any output a team's model returns, not only images."""
import numpy as np
from PIL import Image

from edgeport.models.spec import TensorContract
from edgeport.parity_tests.figures import PANEL, parity_grid


def test_parity_grid_draws_logits_tokens_and_maps_and_keeps_strips_readable(tmp_path):
    rng = np.random.default_rng(0)
    image = TensorContract("image", (1, 3, 32, 32))
    outputs = [TensorContract("logits", (1, 1000)), TensorContract("tokens", (1, 64, 48)),
               TensorContract("depth", (1, 1, 16, 16))]
    ref = {c.name: rng.normal(size=c.shape).astype(np.float32) for c in outputs}
    got = {k: v + np.float32(0.01) * rng.normal(size=v.shape).astype(np.float32) for k, v in ref.items()}
    path = tmp_path / "parity.png"
    parity_grid(path, "custom model", {"image": rng.uniform(size=image.shape)}, [image], ref, got, outputs)
    with Image.open(path) as img:
        assert img.height > 3 * PANEL and img.width <= 4 * (3 * PANEL + 8) + 8   # three rows; a 1000-wide strip capped
