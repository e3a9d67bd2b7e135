"""The one rule for a number in JSON: null when it is not a number or infinite (strict JSON has no Infinity
or NaN; an exact match is said by its own `bit_exact` flag, a NaN/Inf output by `finite: false`); dB figures
rounded."""
from __future__ import annotations

import math


def db_for_json(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def number_for_json(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
