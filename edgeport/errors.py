"""Errors the CLI turns into one line and exit 2."""
from __future__ import annotations


class UsageError(Exception):
    """A bad option value: one line, exit 2."""


USER_ERROR = 2
