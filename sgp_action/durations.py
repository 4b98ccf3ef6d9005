"""Durations as users write them in inputs (`90m`, `8h`, `2d`, `1h30m`, `0.5s`, `300`) and as we print them."""

from __future__ import annotations

import math
import re

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|[wdhms])")
_PLAIN = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def parse_duration(text: str) -> float:
    """Seconds in `text`: a plain number of seconds, or number+unit parts (`w d h m s ms`), e.g. `1h30m`.

    Raises ValueError (with the reason) for empty, negative, zero, unknown-unit or otherwise unparseable text; the
    caller names the input.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("it is empty")
    if cleaned.startswith("-"):
        raise ValueError("a duration cannot be negative")
    if _PLAIN.fullmatch(cleaned):
        seconds = float(cleaned)
    else:
        position, seconds, seen = 0, 0.0, set()
        for match in _PART.finditer(cleaned):
            if match.start() != position:
                break
            unit = match.group(2)
            if unit in seen:
                raise ValueError(f"the unit {unit!r} appears twice")
            seen.add(unit)
            seconds += float(match.group(1)) * _UNITS[unit]
            position = match.end()
        if position != len(cleaned) or not seen:
            raise ValueError("write it as a number and a unit, like 90m, 8h, 2d, 30s or 1h30m")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("it must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: `850ms`, `42s`, `3m05s`, `2h10m`, `3d4h`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def format_elapsed(seconds: float) -> str:
    """A measured time as the log and the summary both print it: `850ms`, `1.5s`, `42.0s`, then `3m05s` and up.

    Tenths under a minute, so that phases shown beside their total add up (whole seconds made "2s + 2s" of a 3 s run).
    """
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    return format_duration(seconds)
