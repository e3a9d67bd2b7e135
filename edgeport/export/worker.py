"""The row process: a child that builds one model and exports its rows one at a time, so a converter that
segfaults, hangs or exhausts memory takes only this process down. The parent (edgeport/export/isolation.py)
keeps the summary, bounds each row's time, and starts a fresh child for the rows after a crash.

The child starts in its own session (the parent kills the whole group on a timeout, converter subprocesses
included), dies with its parent, writes its stdout and stderr to a log the parent reads after a crash, and
dumps every thread's stack there on SIGUSR1 (the parent's question "where is it stuck?" before a kill).
"""
from __future__ import annotations

import ctypes
import faulthandler
import io
import os
import pickle
import resource
import signal
import sys
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection

from edgeport.export.pipeline import (begin_export, frozen_heap, guarded_job, header_of, import_converters,
                                      is_fp32_base, join_notes)
from edgeport.export.plan import ExportPlan
from edgeport.export.preparation import Prepared, VariantCache
from edgeport.export.results import ArtifactOutcome, ModelHeader
from edgeport.exporters.base import ExportError, short_message
from edgeport.progress import Progress

_PR_SET_PDEATHSIG = 1
_CRASH_LOG: int | None = None     # an fd on the log, where faulthandler writes stacks


@dataclass(frozen=True)
class PrepareRequest:
    """Build the plan's model in the child, as the parent's own process would see it."""
    plan: ExportPlan
    cwd: str
    environ: dict[str, str]
    sys_path: list[str]                        # the parent's: a factory file's own imports resolve the same
    began: float                               # the run's start: staging folders older than it are stale
    show_progress: bool
    # the rows still to come start here (their converters are preloaded); past 0 the child replaces one that
    # crashed, and its rebuild is not announced as new steps
    first_row: int = 0
    fp32: dict[str, ArtifactOutcome] = field(default_factory=dict)   # each format's fp32 row so far


@dataclass(frozen=True)
class RowRequest:
    index: int                                 # into ModelHeader.jobs


@dataclass(frozen=True)
class ChildError:
    """An exception prepare() raised in the child (bad input: one line in the parent), with its traceback."""
    error: Exception
    trace: str


class _PipeLines(io.TextIOBase):
    """A text stream whose flushed lines go to the parent, which prints them as its own progress."""
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn, self.parts = conn, []

    def write(self, text: str) -> int:   # type: ignore[override]
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self.parts:
            self.conn.send(("line", "".join(self.parts)))
            self.parts = []


def _detach(max_memory: int | None) -> None:
    """The parent started this process in its own session with stdout and stderr on its log."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)       # a killed parent takes its row process along
    if os.getppid() == 1:                               # the parent died before prctl took effect
        raise SystemExit(1)
    global _CRASH_LOG
    _CRASH_LOG = os.dup(2)    # the log itself: converters' output capture swaps fd 2 for a scratch file
    _crash_stacks()
    faulthandler.register(signal.SIGUSR1, file=_CRASH_LOG, all_threads=True)
    if max_memory:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, hard))


class _Rows:
    """The child's state: the prepared model of the current plan, its variants and fp32 rows."""
    def __init__(self, conn: Connection, max_memory: int | None) -> None:
        self.conn, self.max_memory = conn, max_memory
        self.prepared: Prepared | None = None
        self.variants: VariantCache | None = None
        self.fp32: dict[str, ArtifactOutcome] = {}
        self.progress = Progress(enabled=False)
        self.parent_env: set[str] = set()
        self.heap = ExitStack()      # the heap frozen for this model's rows, thawed when the next one comes

    def prepare(self, request: PrepareRequest) -> ModelHeader | ChildError:
        self.heap.close()
        os.chdir(request.cwd)
        for gone in self.parent_env - request.environ.keys():   # what the parent unset since the last run;
            os.environ.pop(gone, None)                          # what libraries set here on import stays
        os.environ.update(request.environ)
        self.parent_env = set(request.environ)
        sys.path.extend(p for p in request.sys_path if p not in sys.path)   # onnxruntime adds its own: kept
        self.progress = Progress(stream=_PipeLines(self.conn), enabled=request.show_progress)  # type: ignore[arg-type]
        self.prepared = self.variants = None
        try:
            quiet = Progress(enabled=False)
            prepared = begin_export(request.plan, quiet if request.first_row else self.progress, request.began)
        except Exception as exc:
            return ChildError(exc if _picklable(exc) else ExportError(short_message(exc)), traceback.format_exc())
        self.prepared, self.fp32 = prepared, dict(request.fp32)
        self.variants = VariantCache(prepared, self.progress.note)
        import_converters(prepared.jobs[request.first_row:])
        _crash_stacks()      # over the SIGSEGV handler TensorFlow's import installs
        self.heap.enter_context(frozen_heap())
        return header_of(prepared)

    def row(self, request: RowRequest) -> ArtifactOutcome:
        p = self.prepared
        if p is None or self.variants is None:
            raise RuntimeError("a row was asked for before its model was prepared")
        job = p.jobs[request.index]
        _crash_stacks()
        self.progress.total, self.progress.done = 2 + len(p.jobs), 2 + request.index
        outcome = guarded_job(p, job, self.variants, self.fp32.get(job.format.name), self.progress)
        if is_fp32_base(outcome):
            self.fp32[job.format.name] = outcome
        if self.max_memory and "MemoryError" in outcome.message:
            outcome = replace(outcome, message=join_notes(outcome.message, "the row process's memory bound "
                                                          f"({self.max_memory / 2**30:.1f} GiB, --max-memory) was reached"))
        return outcome


def _crash_stacks() -> None:
    """faulthandler's SIGSEGV/SIGABRT stack dump, on top of whatever handler an import installed since."""
    if _CRASH_LOG is not None:
        faulthandler.disable()
        faulthandler.enable(file=_CRASH_LOG, all_threads=True)


def _picklable(exc: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:
        return False


def serve(conn: Connection, max_memory: int | None) -> None:
    """The child's loop: one reply per request until the parent says stop (None) or goes away."""
    _detach(max_memory)
    rows = _Rows(conn, max_memory)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        reply = rows.prepare(request) if isinstance(request, PrepareRequest) else rows.row(request)
        rows.progress.stream.flush()
        conn.send(("reply", reply))


if __name__ == "__main__":     # python -m edgeport.export.worker SOCKET_FD MAX_MEMORY_BYTES (0: none)
    from edgeport.export.worker import serve as _serve   # the importable module's classes, which pickles name
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]) or None)
