"""Each export row in a child process (edgeport/export/worker.py), so one converter cannot end the run.

A signal (SIGSEGV, SIGABRT, the OOM killer's SIGKILL), a non-zero exit, or a row that shows no progress for its
time bound becomes that row's `crashed` / `timed-out` status, naming the converter, the signal and where it
stopped; its staging folder is removed and the remaining rows go on in a fresh child that rebuilds the model.
The child outlives one run (the converters stay imported for the next export in this process) and is replaced
only after a fault or when the memory bound changes. Models a child cannot rebuild from the plan (an nn.Module
object that does not pickle) run in this process, and the summary says so.
"""
from __future__ import annotations

import atexit
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Union

from edgeport.export.pipeline import is_fp32_base, publish_summary, run_in_process
from edgeport.export.plan import ExportPlan
from edgeport.export.results import ArtifactOutcome, ExportSummary, ModelHeader
from edgeport.export.worker import ChildError, PrepareRequest, RowRequest
from edgeport.exporters.base import ExportError, short_message
from edgeport.exporters.formats import get_format
from edgeport.progress import Progress
from edgeport.runtimes.atomic import remove_leftovers

IN_PROCESS_ENV = "EDGEPORT_IN_PROCESS"   # "1": every row in this process (a debugger; tests that patch internals)
ROW_GRACE_S = 10.0     # a row's bound past --converter-timeout: the ONNX export before onnx2tf starts, then onnx2tf
Request = Union[PrepareRequest, RowRequest]
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


@dataclass(frozen=True)
class Fault:
    """Why a row process did not answer: status crashed or timed-out, and one line for the row."""
    status: str
    message: str


@dataclass(frozen=True)
class _Where:
    frame: str          # the innermost frame: "m.py:12 in forward"
    place: str          # "converter", "runtime" or "" (the innermost of our frames says which)
    tail: str           # the last lines of stderr when there was no stack to read


def _where(log: str) -> _Where:
    """Read faulthandler's stack (the current thread's block) or, without one, the last lines of stderr."""
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", log)
    block = next((b for b in blocks if b.startswith("Current thread")), blocks[-1] if len(blocks) > 1 else "")
    frames = [m for m in (_FRAME.match(line) for line in block.splitlines()) if m]
    if not frames:
        lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
        return _Where("", "", " | ".join(lines[-3:])[-400:])
    inner = next((m for m in frames if not _library(m["path"])), frames[0])
    ours = next((m["path"] for m in frames if re.search(r"/(exporters|runtimes|parity_tests)/", m["path"])), "")
    place = "converter" if "/exporters/" in ours else "runtime" if ours else ""
    return _Where(f"{Path(inner['path']).name}:{inner['line']} in {inner['func']}", place, "")


def _library(path: str) -> bool:
    """Python's own modules and installed packages (edgeport's own frames and a model's file are not)."""
    return ("site-packages" in path or path.startswith(sys.prefix) or path.startswith(sys.base_prefix)
            or path.startswith("<frozen")) and "/edgeport/" not in path


def _describe(where: _Where, fmt: str) -> str:
    spelled = get_format(fmt) if fmt else None
    place = ""
    if spelled is not None and where.place == "converter":
        place = f" in the {spelled.label} converter ({spelled.converter or spelled.name})"
    elif spelled is not None and where.place == "runtime":
        place = f" in the {spelled.label} runtime, checking the artifact"
    at = f" at {where.frame}" if where.frame else ""
    said = f"; its last stderr: {where.tail}" if where.tail else ""
    return f"{place}{at}{said}"


class RowProcess:
    """One child running `python -m edgeport.export.worker`, talking over a socket pair, its output in a log.

    A plain subprocess rather than multiprocessing's spawn: spawn re-runs the parent's __main__ (impossible for
    a script on stdin) and shares the parent's resource tracker, which then warns about what a killed child held.
    """
    def __init__(self, max_memory: int | None) -> None:
        fd, log = tempfile.mkstemp(prefix="edgeport-rows-", suffix=".log")
        self.log, self.max_memory = Path(log), max_memory
        mine, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgeport.export.worker", str(theirs.fileno()), str(max_memory or 0)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                start_new_session=True)     # its own session: a timeout kills converter subprocesses too
        finally:
            os.close(fd)
            theirs.close()
        self.conn = Connection(mine.detach())

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: Request, bound: float, echo: Progress, fmt: str = "") -> object | Fault:
        """The child's reply, or the Fault that stopped it; its progress lines are echoed as they come."""
        offset = self.log.stat().st_size
        try:
            self.conn.send(request)
        except (BrokenPipeError, OSError):
            return self._died(offset, fmt)
        last = time.monotonic()
        while True:
            if self.conn.poll(0.2):
                try:
                    kind, payload = self.conn.recv()
                except (EOFError, OSError):
                    return self._died(offset, fmt)
                if kind == "reply":
                    return payload
                if echo.enabled:
                    print(payload, end="", file=echo.stream, flush=True)
                last = time.monotonic()
            elif not self.alive():
                return self._died(offset, fmt)
            elif time.monotonic() - last > bound:
                return self._stuck(offset, bound, fmt)

    def _log_since(self, offset: int) -> str:
        with open(self.log, "rb") as fh:
            fh.seek(offset)
            return fh.read()[-20000:].decode("utf-8", "replace")

    def _died(self, offset: int, fmt: str) -> Fault:
        code = self._wait()
        how = (f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with status {code}")
        bound = (f" (memory bound {self.max_memory / 2**30:.1f} GiB, --max-memory)" if self.max_memory else "")
        where = _where(self._log_since(offset))
        self.close()
        return Fault("crashed", f"the row process {how}{bound}{_describe(where, fmt)}")

    def _stuck(self, offset: int, bound: float, fmt: str) -> Fault:
        """Ask the child for its stacks (faulthandler on SIGUSR1), then kill its whole session."""
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
            time.sleep(0.5)
        except ProcessLookupError:
            pass
        where = _where(self._log_since(offset))
        self.kill()
        return Fault("timed-out", f"no progress for {bound:.0f} s{_describe(where, fmt)}; stopped (give it longer "
                                  f"with --converter-timeout SECONDS)")

    def _wait(self, seconds: float = 10) -> int | None:
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)    # the child leads its session: converter subprocesses too
        except (ProcessLookupError, PermissionError):
            pass
        self._wait()
        self.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        if self._wait(2) is None:     # busy mid-row (an interrupted run): nothing of it is worth waiting for
            self.kill()
        self.close()

    def close(self) -> None:
        self.conn.close()
        self.log.unlink(missing_ok=True)


_SHARED: list[RowProcess] = []     # the one live child of this process, if any


def _row_process(max_memory: int | None) -> RowProcess:
    """The live child if it has this memory bound, else a new one (the other is stopped: one at a time)."""
    if _SHARED and _SHARED[0].alive() and _SHARED[0].max_memory == max_memory:
        return _SHARED[0]
    _stop_all(RowProcess.stop)
    _SHARED.append(RowProcess(max_memory))
    return _SHARED[0]


def _forget(process: RowProcess) -> None:
    if process in _SHARED:
        _SHARED.remove(process)


@atexit.register
def _stop_all(how: Callable[[RowProcess], None] = RowProcess.kill) -> None:
    """The child ended: asked to stop when another memory bound is wanted; at exit killed, since it is idle
    between requests and holds nothing (its interpreter's teardown with TensorFlow loaded took seconds of every
    CLI run)."""
    for process in _SHARED:
        how(process)
    _SHARED.clear()


def in_process_reason(plan: ExportPlan, isolate: bool) -> str:
    """'' when the rows can run in child processes, else why they run here."""
    if not isolate:
        return "asked for (isolate=False)"
    if os.environ.get(IN_PROCESS_ENV) == "1":
        return f"asked for ({IN_PROCESS_ENV}=1)"
    try:
        pickle.dumps(plan)
    except Exception as exc:
        return f"the model object cannot be sent to a row process ({short_message(exc)}); a converter crash ends the run"
    return ""


def run_export(plan: ExportPlan, progress: Progress | None = None, isolate: bool = True) -> ExportSummary:
    """The export of one plan, each row in a child process where it can be. Raises ModelError / ExportError /
    OutputError / RecipeError for bad input before anything is written."""
    progress = progress or Progress(enabled=False)
    why = in_process_reason(plan, isolate)
    if why:
        return run_in_process(plan, progress, f"in-process: {why}")
    return _IsolatedRun(plan, progress).run()


class _IsolatedRun:
    def __init__(self, plan: ExportPlan, progress: Progress) -> None:
        self.plan, self.progress = plan, progress
        self.began = time.time()
        self.max_memory = plan.options.get("max_memory")
        self.fp32: dict[str, ArtifactOutcome] = {}
        self.child: RowProcess | None = None

    def bound(self, fmt: str) -> float:
        """--converter-timeout plus a grace, so a converter's own bound (onnx2tf's process) answers first in its
        own words; else the format's default."""
        given = self.plan.options.get("converter_timeout")
        return float(given) + ROW_GRACE_S if given else get_format(fmt).row_timeout_s

    def run(self) -> ExportSummary:
        started = time.perf_counter()
        header = self._first_prepare()
        outcomes = []
        for index, (fmt, recipe) in enumerate(header.jobs):
            outcome = self._row(header, index, fmt, recipe)
            if is_fp32_base(outcome):
                self.fp32[fmt] = outcome
            outcomes.append(outcome)
        return publish_summary(header, outcomes, time.perf_counter() - started, "process")

    def _prepare(self, first_row: int = 0) -> object | Fault:
        self.child = _row_process(int(self.max_memory) if self.max_memory else None)
        request = PrepareRequest(self.plan, os.getcwd(), dict(os.environ), list(sys.path), self.began,
                                 self.progress.enabled, first_row, dict(self.fp32))
        bound = max(get_format(f).row_timeout_s for f in self.plan.formats)   # building, not converting
        return self.child.ask(request, bound, self.progress)

    def _first_prepare(self) -> ModelHeader:
        reply = self._prepare()
        if isinstance(reply, ChildError):
            raise reply.error from _ChildTraceback(reply.trace)
        if isinstance(reply, Fault):
            self._drop()
            raise ExportError(f"{self.plan.model}: {reply.message} while building the model and PyTorch's reference")
        assert isinstance(reply, ModelHeader)
        return reply

    def _row(self, header: ModelHeader, index: int, fmt: str, recipe: str) -> ArtifactOutcome:
        if self.child is None:
            t0 = time.perf_counter()
            reply = self._prepare(first_row=index)
            if not isinstance(reply, ModelHeader):
                self._drop()
                why = reply.message if isinstance(reply, Fault) else short_message(reply.error)
                return ArtifactOutcome(fmt, recipe, "crashed",
                                       f"not run: the row process could not be restarted: {why}")
            self.progress.note(f"row process restarted, model rebuilt in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        reply = self.child.ask(RowRequest(index), self.bound(fmt), self.progress, fmt)
        if isinstance(reply, ArtifactOutcome):
            return reply
        assert isinstance(reply, Fault)
        self._drop()
        message = reply.message + _full_disk(header.model_dir)     # before its staging folder frees the space
        for leftover in remove_leftovers(header.model_dir, older_than=self.began):
            self.progress.note(f"removed {leftover.name}: the stopped row's staging folder")
        self.progress.note(f"{fmt} {recipe}: {reply.status}: {message}")
        return ArtifactOutcome(fmt, recipe, reply.status, message, None, time.perf_counter() - t0)

    def _drop(self) -> None:
        if self.child is not None:
            _forget(self.child)
            self.child = None


def _full_disk(folder: Path) -> str:
    """A converter that exits on a failed write (litert-torch's writer does, silently) leaves only this clue."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f"; the output filesystem is full ({free // 1024} KB free)" if free < 2**20 else ""


class _ChildTraceback(Exception):
    """The row process's traceback, chained to the error it raised (as concurrent.futures does)."""
    def __init__(self, trace: str) -> None:
        super().__init__(f"\n\"\"\"\n{trace}\"\"\"")
