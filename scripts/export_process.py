"""`edgeport export --json` in its own process, for the matrix scripts: a converter that crashes or hangs ends
one row, not the whole matrix."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]


def run_export(args: Sequence[str], timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    """(the export summary, None), or (None, why there is none: timeout, crash signal and step, last error line)."""
    cmd = [sys.executable, "-m", "edgeport", "export", *args, "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, f"export did not finish in {timeout:.0f} s"
    try:
        return json.loads(done.stdout), None
    except json.JSONDecodeError:
        steps = [ln.strip() for ln in done.stderr.splitlines() if ln.startswith("[")]
        if done.returncode < 0:
            where = f" during {steps[-1].split('] ', 1)[-1].rstrip(' .')}" if steps else ""
            return None, f"export process killed by signal {-done.returncode}{where} (a converter crashed)"
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
