"""Downloads that land whole and verified, or not at all.

Bytes stream into a temporary file beside the destination while their sha256 is computed; only a file of
the declared length with the expected hash is renamed into place. Every failure is one line saying what
went wrong, and leaves nothing behind.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, IO
from urllib.parse import urlparse

from edgeport.models.errors import CheckpointError
from edgeport.runtimes.atomic import atomic_file

CHUNK = 1 << 20
DEFAULT_TIMEOUT_S = 30.0
Progress = Callable[[int, "int | None"], None]


class DownloadError(CheckpointError):
    """The server answered, but not with the file: HTTP error, broken transfer, wrong size or hash."""


class NoNetwork(DownloadError):
    """No connection could be made at all (no route, DNS, refused, timed out before any byte)."""


def fetch_verified(url: str, dest: Path, sha256: str, expected_bytes: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT_S, progress: Progress | None = None) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest) as out:   # kept only when size and sha256 match
        got, digest = _stream(url, out, dest.name, timeout, progress)
        if expected_bytes is not None and got != expected_bytes:
            raise DownloadError(f"download of {dest.name} from {url} gave {got} bytes, the release file has "
                                f"{expected_bytes}; nothing was kept")
        if digest != sha256:
            raise DownloadError(f"download of {dest.name} from {url} has sha256 {digest[:16]}..., expected "
                                f"{sha256[:16]}...: not the release file (a wrong mirror, or tampered); nothing was kept")
    return dest


def _stream(url: str, out: IO[bytes], name: str, timeout: float, progress: Progress | None) -> tuple[int, str]:
    import http.client
    import urllib.error
    import urllib.request

    if urlparse(url).scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {name}: {url!r} is not an http(s) URL")
    request = urllib.request.Request(url, headers={"User-Agent": "edgeport"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {name} failed: HTTP {exc.code} {exc.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NoNetwork(f"cannot reach {urlparse(url).netloc} for {name} ({reason})") from None
    declared = response.headers.get("Content-Length")
    total = int(declared) if declared and declared.isdigit() else None
    digest, got = hashlib.sha256(), 0
    try:
        with response:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                if progress:
                    progress(got, total)
    except (http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"download of {name} from {url} broke off after {got} of {total or '?'} bytes "
                            f"({type(exc).__name__}); nothing was kept: run again") from None
    if total is not None and got != total:
        raise DownloadError(f"download of {name} from {url} ended after {got} of {total} bytes (truncated); "
                            "nothing was kept: run again")
    return got, digest.hexdigest()
