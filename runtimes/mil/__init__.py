"""edgeport's MIL evaluator: runs a saved Core ML program op by op in PyTorch, on any platform.

A runtime, used by two steps that need Core ML's arithmetic on Linux: w8a8 calibration (activation ranges,
quantize/coreml_recipes.py) and parity (runtimes/coreml.py, labelled as this evaluator, never as Core ML).
Ops are one function each in ops.py, activations.py, indexing.py, reductions.py, resize.py and compressed.py,
registered by name in registry.py (which imports no op module); a name registered twice is refused. Importing
the package imports every op module. Which ops must exist is derived from the converter
(scripts/mil_coverage.py over models/corpus/ops.py).
"""
from edgeport.runtimes.mil import activations, compressed, indexing, ops, reductions, resize  # noqa: F401  (registers every op)
