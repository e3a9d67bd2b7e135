"""The one rule for a dB figure in JSON: rounded when finite, null when it is not a number or infinite
(an exact match is said by its own `bit_exact` flag; strict JSON has no Infinity or NaN)."""
from __future__ import annotations

import math


def db_for_json(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)
