"""The runtimes layer: what an artifact is (records) and how to run one (onnxruntime, LiteRT with XNNPACK,
edgeport's MIL evaluator, Core ML predict on macOS, ExecuTorch).

It sits below exporters/ (which write artifacts and describe them with these records, and which use the MIL
evaluator and LiteRT while compressing) and below parity_tests/ and benchmarks/ (which run them). It imports
no other edgeport package, and nothing heavy at import time: an ONNX or TFLite benchmark worker stays
torch-free.
"""
