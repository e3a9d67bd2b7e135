"""Which samples gate which recipe: conversion fidelity on every sample, lossy recipes on photos."""
import math

import pytest

from edgeport.models.spec import ParityGate
from edgeport.parity_tests.metrics import OutputMetrics
from edgeport.parity_tests.report import ParityReport, SampleResult, judge
from edgeport.quantize.recipes import parse_recipe


def _sample(label, db, finite=True):
    return SampleResult(label, "out", OutputMetrics(0.1, 0.01, db, 0.99, finite, 0.0))


SAMPLES = [_sample("photo:astronaut", 38.0), _sample("photo:coffee", 36.5), _sample("random:seed=0", 21.0)]


@pytest.mark.parametrize("recipe,samples", [
    ("fp32", "all"), ("fp16", "all"), ("prune50", "all"), ("sparse50", "all"),
    ("w8", "photos"), ("w8a8", "photos"), ("palettize4", "photos"), ("prune50+w8a8", "photos"),
])
def test_each_recipe_declares_what_gates_it(recipe, samples):
    assert parse_recipe(recipe).gate({}).samples == samples
    override = parse_recipe(recipe).gate({"w8a8": ParityGate(25.0)})   # a spec override keeps the policy
    assert override.samples == samples


def test_photo_gate_ignores_noise_but_all_gate_does_not():
    assert judge(SAMPLES, ParityGate(30.0, samples="photos")) == ("pass", "")
    status, message = judge(SAMPLES, ParityGate(30.0, samples="all"))
    assert status == "fail" and message.startswith("random:seed=0/out: 21.0 dB < 30 dB")
    status, message = judge(SAMPLES, ParityGate(37.0, samples="photos"))   # photos still have to clear it
    assert status == "fail" and "photo:coffee" in message


def test_nan_on_the_noise_sample_fails_even_when_photos_gate():
    samples = SAMPLES[:2] + [_sample("random:seed=0", -math.inf, finite=False)]
    assert judge(samples, ParityGate(30.0, samples="photos"))[0] == "fail"


def test_a_model_without_photo_samples_is_gated_on_what_it_has():
    only_noise = [_sample("random:seed=0", 21.0)]
    assert judge(only_noise, ParityGate(30.0, samples="photos"))[0] == "fail"


def test_report_keeps_both_figures_and_old_manifests_read_as_all():
    report = ParityReport("pass", "onnxruntime", ParityGate(30.0, samples="photos"), tuple(SAMPLES))
    d = report.to_dict()
    assert d["photo_psnr_db"] == 36.5 and d["noise_psnr_db"] == 21.0 and d["gate"]["samples"] == "photos"
    assert ParityReport.from_dict(d).gate.samples == "photos"
    del d["gate"]["samples"]
    assert ParityReport.from_dict(d).gate.samples == "all"
    assert "on photos only" in report.figures()
    with pytest.raises(ValueError, match="samples must be one of"):
        ParityGate(30.0, samples="noise")
