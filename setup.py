"""The root folders install as subpackages of the one import name `edgeport` (pyproject.toml holds the rest).

models/, runtimes/, quantize/, exporters/, parity_tests/ and benchmarks/ stay visible at the repository's root
and install as edgeport.models, edgeport.runtimes, ...; edgeport/ is the app layer. Nothing else is installed,
so an app's own `models` or `benchmarks` package never meets ours.
"""
from setuptools import find_packages, setup

ROOT_PACKAGES = ("runtimes", "models", "quantize", "exporters", "parity_tests", "benchmarks")

found = find_packages(include=["edgeport", "edgeport.*", *ROOT_PACKAGES, *(f"{p}.*" for p in ROOT_PACKAGES)])
setup(packages=[name if name.startswith("edgeport") else f"edgeport.{name}" for name in found],
      package_dir={"edgeport": "edgeport", **{f"edgeport.{p}": p for p in ROOT_PACKAGES}})
