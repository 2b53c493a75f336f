"""Argument checks shared by the models' ``__check_init__``."""

from typing import Any


def require_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) in
    ``[minimum, maximum]``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and (maximum is None or value <= maximum):
        return
    span = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    raise ValueError(f"{name} must be an integer {span}, got {value!r}")
