"""The corpora that measure edgeport beyond its zoo: small seeded architectures a team would bring, and the
op-per-module corpus (whose converter and evaluator checks are in test_mil_eval.py)."""
from pathlib import Path

import pytest
import torch

from edgeport.models.corpus.architectures import ARCHITECTURES, INPUT_SIZE, _example_batch
from edgeport.models.corpus.ops import CONVERTER_REFUSES, OP_CASES, build_case, op_input

ROOT = Path(__file__).resolve().parents[1]


def test_op_cases_are_unique_float_and_the_refusal_list_names_real_cases():
    names = [c.name for c in OP_CASES]
    assert len(names) == len(set(names))
    assert set(CONVERTER_REFUSES) <= set(names)
    x = op_input()
    with torch.no_grad():
        outputs = {c.name: build_case(c)(x) for c in OP_CASES}
    assert all(y.dtype == torch.float32 and torch.isfinite(y).all() for y in outputs.values())


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_corpus_architecture_is_seeded_and_its_output_follows_the_input(name):
    photos = _example_batch()[0]
    assert photos.shape[1:] == (3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        first, again = ARCHITECTURES[name](), ARCHITECTURES[name]()
        outs, outs_again = first(photos), again(photos)
    outs = outs if isinstance(outs, tuple) else (outs,)
    outs_again = outs_again if isinstance(outs_again, tuple) else (outs_again,)
    for y, y2 in zip(outs, outs_again):
        assert torch.equal(y, y2), "the factory must build the same weights every time"
        between_photos = float((y[0] - y[1]).abs().mean())
        assert between_photos > 0.05 * float(y.std()) > 0, "output barely depends on the input"


@pytest.mark.e2e
@pytest.mark.parametrize("half", [0, 1])    # two tests the suite's two workers can share
def test_every_corpus_architecture_gets_a_core_ml_verdict_at_fp32_and_fp16(tmp_path, half):
    """As a team would run its own model (`--model file.py:factory`): every architecture converts, runs in the
    MIL evaluator (no op missing) and passes at fp32 (>= 60 dB) and fp16 (the fp16 gate)."""
    import edgeport.api as api

    rows = []
    names = list(ARCHITECTURES)[half::2]
    for name in names:
        summary = api.export(f"{ROOT / 'models/corpus/architectures.py'}:{name}", inputs=[(1, 3, INPUT_SIZE, INPUT_SIZE)],
                             to=["coreml"], recipes=["fp32", "fp16"], out=tmp_path)
        rows += [(name, r) for r in summary.rows]
    assert len(rows) == 2 * len(names) and names
    verdicts = {(n, r.recipe): (r.status, r.worst_psnr_db, r.message[:120]) for n, r in rows}
    assert all(r.status == "pass" and "MIL evaluator" in r.engine for _, r in rows), verdicts
    assert all(r.worst_psnr_db >= 60 for _, r in rows if r.recipe == "fp32"), verdicts


@pytest.mark.e2e
def test_core_ml_dynamic_size_takes_a_unet_that_needs_multiples_of_four(tmp_path):
    """--dynamic-hw exports a net whose skips tie sizes together (two 2x pools: multiples of 4), which a named
    16-2048 Dim made torch.export refuse; the program runs at another valid size in the evaluator."""
    import json

    import numpy as np

    import edgeport.api as api
    from edgeport.runtimes.mil.program import MilEvaluator, load_mil_program

    summary = api.export(f"{ROOT / 'models/corpus/architectures.py'}:unet", inputs=[(1, 3, 64, 64)], to=["coreml"],
                         recipes=["fp32"], out=tmp_path, dynamic_hw=True)
    row, = summary.rows
    assert row.status == "pass", row
    details = json.loads((Path(row.path) / "manifest.json").read_text())["artifact"]["details"]
    assert details["dynamic_hw"] == [16, 2048]
    program = MilEvaluator(load_mil_program(next(Path(row.path).glob("*.mlpackage"))))
    x = np.random.default_rng(0).uniform(size=(1, 3, 48, 40)).astype(np.float32)
    with torch.no_grad():
        want = ARCHITECTURES["unet"]()(torch.from_numpy(x)).numpy()
    got = next(iter(program.run({"image": x}).values()))
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
