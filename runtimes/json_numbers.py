"""The one rule for a number in JSON: null when it is not a number or infinite (strict JSON has no Infinity
or NaN; an exact match is said by its own `bit_exact` flag, a NaN/Inf output by `finite: false`)."""
from __future__ import annotations

import math


def number_for_json(value: float | None, digits: int | None = None) -> float | None:
    """The value as a JSON number, rounded to `digits` when given; None when it is no finite number."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) if digits is None else round(float(value), digits)


def db_for_json(value: float | None, digits: int = 2) -> float | None:
    """A dB figure: the same rule, rounded (to 2 digits unless said)."""
    return number_for_json(value, digits)
