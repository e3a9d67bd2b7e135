"""What an artifact says about itself, in its format's own metadata (exporters/metadata.py writes it): name,
summary, author, licence, version, one line per input and output, and the whole I/O contract as JSON. No
local path goes in: an artifact is shipped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeport import __version__

if TYPE_CHECKING:
    from edgeport.export.preparation import Prepared
    from edgeport.models.spec import TensorContract


def artifact_about(p: Prepared, recipe: str) -> dict[str, Any]:
    """What the artifact says about itself in its format's metadata (exporters/metadata.py)."""
    spec, source = p.spec, p.source
    official = spec.official if source.weights and spec.official is not None and source.origin else None
    licence = official.license if official is not None else (
        "random init: no trained weights" if not source.weights else f"weights' own licence ({spec.metadata.upstream})")

    def line(c: TensorContract) -> str:
        kind = "8-bit image" if c.pixels is not None and p.plan.io == "image" else f"{c.dtype} tensor"
        return f"{c.description} ({kind}; values: {c.normalization})"
    contract = {"inputs": [c.to_dict() for c in p.contracts],
                "outputs": [c.with_shape(s).to_dict() for c, s in zip(spec.outputs, p.output_shapes)],
                "io": p.plan.io, "recipe": recipe, "task": spec.task}
    weights = (f"weights {Path(source.weights).name} (sha256 {source.weights_sha256[:12]}...)" if source.weights
               else f"random init, seed {source.seed}: no trained weights")   # no local paths in an artifact
    return {"name": spec.name, "summary": f"{spec.summary} ({recipe}); {weights}",
            "author": f"edgeport {__version__} export of {spec.metadata.upstream}", "license": licence,
            "version": f"edgeport {__version__}; weights sha256 {source.weights_sha256 or 'none (random init)'}",
            "inputs": {c.name: line(c) for c in p.contracts}, "outputs": {c.name: line(c) for c in spec.outputs},
            "contract": json.dumps(contract, sort_keys=True)}
