"""sgp_action.durations: the duration syntax of the inputs, and the short form printed in summaries."""

from __future__ import annotations

import pytest

from sgp_action.durations import format_duration, format_elapsed, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("8h", 28800),
        ("2d", 172800),
        ("1w", 604800),
        ("30s", 30),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d4h10m5s", 187805),
        ("300", 300),
        ("0.5s", 0.5),
        ("1.5h", 5400),
        (".25s", 0.25),
        ("250ms", 0.25),
        ("1m30s", 90),
        (" 8H ", 28800),
    ],
)
def test_good_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5m", "negative"),
        ("0", "longer than zero"),
        ("0s", "longer than zero"),
        ("0h0m", "longer than zero"),
        ("abc", "number and a unit"),
        ("5x", "number and a unit"),
        ("5 minutes", "number and a unit"),
        ("1h30", "number and a unit"),
        ("h", "number and a unit"),
        ("1.2.3s", "number and a unit"),
        ("1h1h", "twice"),
        ("nan", "number and a unit"),
        ("inf", "number and a unit"),
        ("1e3", "number and a unit"),
    ],
)
def test_bad_durations(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (42, "42s"), (59.6, "1m00s"), (185, "3m05s"), (7800, "2h10m"), (273600, "3d4h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (1.5, "1.5s"), (1.449, "1.4s"), (42.0, "42.0s"), (59.96, "1m00s"), (185, "3m05s")],
)
def test_format_elapsed_keeps_tenths_under_a_minute(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text
