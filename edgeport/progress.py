"""Progress lines on stderr, so stdout stays clean for --json."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class Progress:
    def __init__(self, total: int = 0, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.done += 1
        counter = f"[{self.done}/{self.total}] " if self.total else ""
        if self.enabled:
            print(f"{counter}{label} ...", file=self.stream, flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.enabled:
                print(f"{' ' * len(counter)}{label}: {time.perf_counter() - start:.1f} s", file=self.stream,
                      flush=True)

    def note(self, text: str) -> None:
        """A line inside a long step (a fine-tune's progress)."""
        if self.enabled:
            print(f"    {text}", file=self.stream, flush=True)
