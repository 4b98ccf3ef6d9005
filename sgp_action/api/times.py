"""Timestamps as SGP servers may write them (docs/sgp-api.md#timestamps), read into aware UTC datetimes and written
back as ISO 8601 UTC with a `Z`."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger(__name__)

_FRACTION = re.compile(r"(\.\d+)")
_COMPACT_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})?$")
_EPOCH_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
#: An epoch number above this is in milliseconds (seconds would put it past the year 5000).
_EPOCH_MS_FROM = 1e11


def parse_datetime(value: Any) -> datetime | None:
    """Parse a timestamp as a server may write it (docs/sgp-api.md#timestamp-formats); None when absent or unreadable.

    ISO 8601 with `Z`, `+00:00` or `+0000` offsets and fractions of any length (Python 3.10's `fromisoformat`
    accepts none of `Z`, `+0000` or fractions other than 3 or 6 digits, so the text is normalised first), or an epoch
    number of seconds (milliseconds when it is that large), also as a string of digits. A timestamp without an
    offset is taken as UTC, so every result can be compared with any other.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch(float(value))
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if _EPOCH_TEXT.match(text):
            return _from_epoch(float(text))
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        elif "T" in text[10:11] or " " in text[10:11]:
            # only the time part may end in an offset: the date's own `-` must not be taken for one
            text = text[:11] + _COMPACT_OFFSET.sub(_offset, text[11:], count=1)
        text = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], text, count=1)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            logger.debug("ignoring unreadable timestamp %r", value)
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _offset(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}:{match.group(3) or '00'}"


def _from_epoch(seconds: float) -> datetime | None:
    if abs(seconds) >= _EPOCH_MS_FROM:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        logger.debug("ignoring an epoch timestamp out of range: %r", seconds)
        return None


def format_datetime(value: datetime) -> str:
    """UTC ISO 8601 with a `Z` suffix (docs/sgp-api.md#timestamps); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
