"""edgeport's MIL evaluator: runs a saved Core ML program op by op in PyTorch, on any platform.

It lives beside the exporters because two steps need a Core ML runtime on Linux: w8a8 calibration (activation
ranges) and parity (parity_tests.runtimes wraps it, labelled as this evaluator, never as Core ML).
"""
