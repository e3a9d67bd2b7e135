"""The output folder of a distributed run: a local path (a filesystem every node mounts) or an fsspec URL.

Workers publish each finished artifact folder whole: copied beside its final name, then moved into place, so a
reader never sees half an artifact. On a local path the move is a rename (atomic); on an object store
(s3://, gs://, ...) fsspec's move copies then deletes, so a folder appears object by object but only once
complete. Object stores need their fsspec package (s3fs, gcsfs) on the driver and every worker.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeport.runtimes.atomic import OutputError, check_writable, commit_dir, write_text

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


LOCAL_SCHEMES = ("", "file")


@dataclass(frozen=True)
class OutputStore:
    root: str

    @property
    def scheme(self) -> str:
        return self.root.split("://", 1)[0] if "://" in self.root else ""

    @property
    def local(self) -> Path | None:
        """The folder when the store is on this machine's filesystem."""
        if self.scheme not in LOCAL_SCHEMES:
            return None
        return Path(self.root.split("://", 1)[1] if self.scheme else self.root).absolute()

    def url(self, rel: str) -> str:
        return str(self.local / rel) if self.local else f"{self.root.rstrip('/')}/{rel}"

    def _fs(self) -> AbstractFileSystem:
        import fsspec

        return fsspec.core.url_to_fs(self.root)[0]

    def check(self) -> None:
        """Fail before any task runs when the store cannot be written (one clear line, nothing left behind)."""
        if self.local is not None:
            check_writable(self.local)
            return
        try:
            fs = self._fs()
            probe = self.url(f".edgeport-probe-{uuid.uuid4().hex[:8]}")
            fs.pipe(probe, b"")
            fs.rm(probe)
        except Exception as exc:  # noqa: BLE001  (any backend's refusal is the same user error)
            raise OutputError(f"cannot write to {self.root}: {type(exc).__name__}: {exc}; install the fsspec "
                              f"package for {self.scheme}:// on every node or choose another --out") from None

    def publish(self, folder: Path, rel: str) -> str:
        """Put a finished local folder at rel (replacing an older one only once the new one is complete)."""
        if self.local is not None:
            final = self.local / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{final.name}-", dir=final.parent))
            try:
                shutil.copytree(folder, staging, dirs_exist_ok=True)
                commit_dir(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return str(final)
        fs, final = self._fs(), self.url(rel)
        staging = self.url(f"{rel.rsplit('/', 1)[0]}/.staging-{uuid.uuid4().hex[:8]}")
        fs.put(str(folder), staging, recursive=True)
        if fs.exists(final):
            fs.rm(final, recursive=True)
        fs.mv(staging, final, recursive=True)
        return final

    def write_text(self, rel: str, text: str) -> None:
        if self.local is not None:
            write_text(self.local / rel, text)
        else:
            self._fs().pipe(self.url(rel), text.encode())

    def write_json(self, rel: str, data: Any) -> None:
        self.write_text(rel, json.dumps(data, indent=2) + "\n")

    def exists(self, rel: str) -> bool:
        return (self.local / rel).exists() if self.local is not None else self._fs().exists(self.url(rel))
