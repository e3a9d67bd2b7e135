"""Computations whose results become artifact bytes run on one torch thread: a conv's rounding follows the
thread count, so calibrating on 1, 2 or 64 threads would give different weights or scales, and a digest
that changes with the machine's cores (or under Ray, which gives each task one thread)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
