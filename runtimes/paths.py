"""Where edgeport keeps what it can rebuild or re-download: one root for every cache."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$EDGEPORT_CACHE, else $XDG_CACHE_HOME/edgeport, else ~/.cache/edgeport."""
    if os.environ.get("EDGEPORT_CACHE"):
        return Path(os.environ["EDGEPORT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeport"
