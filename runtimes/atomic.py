"""Writes that are complete or absent: build beside the target, then rename. The one copy for every layer
(manifests, reports, charts, downloads, metadata, photo outputs): it sits in the bottom layer so each can use it."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

import psutil

if TYPE_CHECKING:
    from PIL import Image


class OutputError(Exception):
    """The output folder cannot be written."""


def check_writable(folder: Path) -> None:
    """Fail early, creating nothing: the nearest existing ancestor must be a writable folder."""
    probe = Path(folder).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write to output folder {folder}: {probe} is a file; choose another with --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to output folder {folder}: {probe} is not writable; "
                          "choose another with --out")


def ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgeport-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {folder}: {exc.strerror or exc}; "
                          "choose another with --out") from None


@contextmanager
def staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A hidden work folder next to the final one, removed if the block fails or does not commit it. Its name
    carries this process's id, so a later run can tell a dead run's leftovers from a live one's work."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".staging-{name}-{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(parent: Path, older_than: float) -> list[Path]:
    """Staging and replaced folders a killed run left in `parent` (SIGKILL skips every cleanup): those whose
    process is gone, and unnamed ones from before `older_than` (a time.time()). A live run's are kept."""
    removed = []
    for path in sorted(parent.glob(".staging-*")) + sorted(parent.glob(".old-*")):
        owner = path.name.split("-")[-2]
        alive = owner.isdigit() and psutil.pid_exists(int(owner))
        if path.is_dir() and not alive and (owner.isdigit() or path.stat().st_mtime < older_than):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def commit_dir(staging: Path, final: Path) -> None:
    """Put a finished folder in place; an older one is replaced only now that the new one is complete. The
    staging folder's private mode (mkdtemp's 0700) is replaced by the ordinary one, so a CI upload step or a
    web server running as another user can read the artifact."""
    os.chmod(staging, 0o777 & ~_umask())
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


@contextmanager
def atomic_file(path: Path | str, mode: str = "wb") -> Iterator[IO]:
    """A file that appears at `path` only once the block ends without an error; until then it is a hidden
    temporary beside it (same filesystem, so the rename is atomic), removed if the block fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if absent) for the block: two runs writing one folder's
    summary files take turns, so each pair of files comes from one run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text(path: Path, text: str) -> None:
    with atomic_file(path, "w") as fh:
        fh.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def save_png(path: Path, image: Image.Image) -> None:
    """A Pillow image as a PNG, complete or absent."""
    with atomic_file(path) as fh:
        image.save(fh, format="PNG")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
