"""Checks of scalar constructor arguments shared by the core's modules and the adapters."""

from __future__ import annotations

from typing import Any


def check_positive_int(value: Any, name: str, meaning: str = "") -> int:
    """``value`` if it is an ``int`` ``>= 1`` (a ``bool`` is not), else a ``ValueError``
    naming the argument; ``meaning`` (e.g. ``"K + 1"``) says what it counts."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        what = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be a positive int{what}, got {value!r}")
    return value
