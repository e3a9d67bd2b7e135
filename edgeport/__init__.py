"""edgeport: PyTorch image models to Core ML, ONNX, TFLite and ExecuTorch, with parity checked in the real
runtimes. The one import name: the root folders install as edgeport.models, edgeport.runtimes, ... (setup.py)."""
import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
