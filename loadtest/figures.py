"""How the benchmark reports write their numbers, so every table reads alike."""

from __future__ import annotations

import math


def whole(value: float) -> str:
    """Rounded down, with thousands separators (a rate is never reported higher)."""
    return f"{math.floor(value):,}"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"
