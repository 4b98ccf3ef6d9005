"""SSE parsing per docs/sgp-api.md#the-standards-rules, despite sseclient-py's departures
(docs/sgp-api.md#where-sseclient-py-departs), whatever the chunking."""

from __future__ import annotations

import itertools
import logging
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgp_action.api.sse import MAX_LINE_BYTES, EventStream, SSEEvent, log_lines


def ev(data: str, type: str = "message", id: str = "") -> SSEEvent:
    return SSEEvent(type=type, data=data, last_event_id=id)


# (name, stream, expected events, expected final last_event_id, expected reconnection time)
CASES: list[tuple[str, bytes, list[SSEEvent], str, int | None]] = [
    ("lf", b"data: hello\n\n", [ev("hello")], "", None),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [ev("a"), ev("b")], "", None),
    ("lone cr", b"data: a\r\rdata: b\r\r", [ev("a"), ev("b")], "", None),
    ("lf then crlf blank (sseclient-py merge quirk)", b"data: a\n\r\ndata: b\n\n", [ev("a"), ev("b")], "", None),
    ("lf then cr blank", b"data: a\n\rdata: b\n\n", [ev("a"), ev("b")], "", None),
    ("crlf then lf blank", b"data: a\r\n\ndata: b\r\n\n", [ev("a"), ev("b")], "", None),
    ("bom", b"\xef\xbb\xbfdata: a\n\n", [ev("a")], "", None),
    ("only one bom", b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [ev("b")], "", None),
    ("comments", b": hi\ndata: a\n: mid\ndata: b\n\n:bye\n\n", [ev("a\nb")], "", None),
    ("named", b"event: status\ndata: x\n\ndata: y\n\n", [ev("x", "status"), ev("y")], "", None),
    ("empty event name", b"event:\ndata: x\n\n", [ev("x")], "", None),
    ("type reset after undispatched block", b"event: x\n\ndata: a\n\n", [ev("a")], "", None),
    (
        "id carries over and clears",
        b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
        [ev("a", id="1"), ev("b", id="1"), ev("c")],
        "",
        None,
    ),
    ("id-only block", b"id: 7\n\ndata: a\n\n", [ev("a", id="7")], "7", None),
    ("id after data in block", b"data: a\nid: 9\n\n", [ev("a", id="9")], "9", None),
    ("id with NUL ignored", b"id: 1\n\nid: 2\x003\ndata: a\n\n", [ev("a", id="1")], "1", None),
    ("id keeps spaces after the first", b"id:  x \ndata: a\n\n", [ev("a", id=" x ")], " x ", None),
    ("retry digits", b"retry: 1500\ndata: a\n\n", [ev("a")], "", 1500),
    (
        "retry invalid ignored",
        b"retry: 1500\n\nretry: 15x\nretry: -1\nretry:  9\nretry:\ndata: a\n\n",
        [ev("a")],
        "",
        1500,
    ),
    ("retry unicode digits ignored", "retry: ١٢\ndata: a\n\n".encode(), [ev("a")], "", None),
    ("unterminated final event dropped", b"data: a\n\ndata: b\n", [ev("a")], "", None),
    ("unterminated final line dropped", b"data: a\n\ndata: b", [ev("a")], "", None),
    ("no space after colon", b"data:a\n\n", [ev("a")], "", None),
    ("only one space removed", b"data:  a\n\n", [ev(" a")], "", None),
    ("data without colon", b"data\n\n", [ev("")], "", None),
    ("two empty data lines", b"data\ndata\n\n", [ev("\n")], "", None),
    ("data then empty data", b"data: a\ndata:\n\n", [ev("a\n")], "", None),
    ("unknown field with space before colon", b"data : a\n\n", [], "", None),
    ("field names are case-sensitive", b"Data: a\n\n", [], "", None),
    ("value keeps colons", b"data: a: b\n\n", [ev("a: b")], "", None),
    ("blank lines alone", b"\n\n\r\n\r\r", [], "", None),
    (
        "unicode line separators are not line ends",
        "data: é\u2028x\u0085y\x0bz\x0cw\n\n".encode(),
        [ev("é\u2028x\u0085y\x0bz\x0cw")],
        "",
        None,
    ),
    ("invalid utf-8 replaced", b"data: a\xffb\n\n", [ev("a\ufffdb")], "", None),
    (
        "json payload",
        b'data: {"line": "Step 1/3 : FROM python"}\n\n',
        [ev('{"line": "Step 1/3 : FROM python"}')],
        "",
        None,
    ),
]


def parse(chunks: list[bytes]) -> tuple[list[SSEEvent], str, int | None]:
    stream = EventStream(chunks)
    events = list(stream)
    return events, stream.last_event_id, stream.reconnection_time_ms


@pytest.mark.parametrize(("name", "stream", "expected", "last_id", "retry"), CASES, ids=[c[0] for c in CASES])
def test_whole_stream(name: str, stream: bytes, expected: list[SSEEvent], last_id: str, retry: int | None) -> None:
    assert parse([stream]) == (expected, last_id, retry)


@pytest.mark.parametrize(("name", "stream", "expected", "last_id", "retry"), CASES, ids=[c[0] for c in CASES])
def test_every_split_point(name: str, stream: bytes, expected: list[SSEEvent], last_id: str, retry: int | None) -> None:
    for cut in range(len(stream) + 1):
        assert parse([stream[:cut], stream[cut:]]) == (expected, last_id, retry), f"split at {cut}"
    for first in range(len(stream) + 1):  # and every pair of split points
        for second in range(first, len(stream) + 1):
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert parse(chunks)[0] == expected, f"split at {first}, {second}"


@pytest.mark.parametrize(("name", "stream", "expected", "last_id", "retry"), CASES, ids=[c[0] for c in CASES])
def test_byte_at_a_time(name: str, stream: bytes, expected: list[SSEEvent], last_id: str, retry: int | None) -> None:
    assert parse([stream[i : i + 1] for i in range(len(stream))]) == (expected, last_id, retry)


def test_events_come_out_as_soon_as_complete() -> None:
    """An event is yielded before the next chunk is read (live logs must not wait for more data)."""
    fed: list[int] = []

    def chunks() -> object:
        for i, chunk in enumerate([b"data: a\n", b"\n", b"data: b\r", b"\n\r", b"\n"]):
            fed.append(i)
            yield chunk

    seen: list[tuple[str, int]] = []
    for event in EventStream(chunks()):  # type: ignore[arg-type]
        seen.append((event.data, fed[-1]))
    assert seen == [("a", 1), ("b", 3)]  # the CR of chunk 3 ends the blank line at once


@pytest.mark.parametrize(
    ("events", "lines"),
    [
        ([ev('{"line": "hello"}')], ["hello"]),
        ([ev('{"line": "with newline\\n"}')], ["with newline"]),
        ([ev('{"line": "named"}', type="status"), ev('{"line": "kept"}')], ["kept"]),
        ([ev('{"line": "error"}', type="error")], []),
        ([ev("plain text line")], ["plain text line"]),
        ([ev("{}"), ev('{"line": null}'), ev('{"line": 3}'), ev("[1]"), ev('"s"')], []),
        ([ev('{"line": ""}')], [""]),
        ([ev('{"line": "::error::x"}')], ["::error::x"]),  # escaping is the printer's job, not the parser's
    ],
)
def test_log_lines(events: list[SSEEvent], lines: list[str]) -> None:
    assert list(log_lines(events)) == lines


def test_log_lines_from_bytes() -> None:
    stream = (
        b'data: {"line": "one"}\r\n\r\nevent: ping\ndata: {}\n\n: keepalive\n\ndata: {"line": "two"}\n\ndata: {"line"'
    )
    assert list(log_lines(EventStream([stream[i : i + 3] for i in range(0, len(stream), 3)]))) == ["one", "two"]


# --- property: same events however the bytes are split, and the same as an independent reference -----------------


def reference(stream: bytes) -> tuple[list[SSEEvent], str, int | None]:
    """A direct transcription of WHATWG 9.2.5/9.2.6 over the whole stream (no sseclient-py)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    *lines, _unterminated = re.split(r"\r\n|\r|\n", text)
    events: list[SSEEvent] = []
    data, kind, last_id, retry = "", "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append(SSEEvent(kind or "message", data[:-1] if data.endswith("\n") else data, last_id))
            data, kind = "", ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            kind = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, last_id, retry


FIELD_LINES = st.sampled_from(
    [
        "data: x",
        "data:y",
        "data",
        "data:  sp",
        "event: named",
        "event:",
        "id: 1",
        "id",
        "id: a\0b",
        "retry: 250",
        "retry: 2x",
        ": comment",
        "",
        "",
        "unknown: z",
        "data: é\u2028",
        'data: {"line": "l"}',
    ]
)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.tuples(FIELD_LINES, ENDINGS), max_size=14))
    text = "".join(line + end for line, end in parts)
    if draw(st.booleans()):
        text += draw(FIELD_LINES)  # an unterminated tail
    raw = text.encode()
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    return raw


@st.composite
def splits(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = draw(streams())
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(splits())
def test_same_events_however_split(case: tuple[bytes, list[bytes]]) -> None:
    stream, chunks = case
    assert b"".join(chunks) == stream
    assert parse(chunks) == parse([stream]) == reference(stream)


# --- bounds: a line or an event that never ends ----------------------------------------------------------------

_CAP = MAX_LINE_BYTES


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# (name, stream, expected events, warnings): nothing past the caps is kept, and what follows still parses.
BOUND_CASES: list[tuple[str, bytes, list[SSEEvent], int]] = [
    ("line at the cap kept", b"data:" + b"a" * (_CAP - 5) + b"\n\n", [ev("a" * (_CAP - 5))], 0),
    ("line over the cap dropped", b"data:" + b"a" * (_CAP - 4) + b"\n\ndata: b\n\n", [ev("b")], 1),
    (
        "only the long line of an event goes",
        b"data: x\ndata:" + b"a" * 3 * _CAP + b"\r\ndata: y\n\ndata: z\n\n",
        [ev("x\ny"), ev("z")],
        1,
    ),
    (
        "event over the cap dropped, the next kept",
        b"data: " + b"a" * 1000 + b"\n" + (b"data: " + b"a" * 1000 + b"\n") * 1100 + b"\ndata: after\n\n",
        [ev("after")],
        1,
    ),
    ("each long line warns once", (b"data:" + b"a" * (_CAP + 1) + b"\n") * 2 + b"\ndata: c\n\n", [ev("c")], 2),
]


@pytest.mark.parametrize(("name", "stream", "expected", "warnings"), BOUND_CASES, ids=[c[0] for c in BOUND_CASES])
@pytest.mark.parametrize("size", [1 << 20, 65536, 4093])
def test_overlong_lines_and_events_are_dropped(
    caplog: pytest.LogCaptureFixture, name: str, stream: bytes, expected: list[SSEEvent], warnings: int, size: int
) -> None:
    with caplog.at_level(logging.WARNING, logger="sgp_action.api.sse"):
        events, _, _ = parse(_pieces(stream, size))
    assert events == expected
    assert len([r for r in caplog.records if "it is dropped" in r.getMessage()]) == warnings


@pytest.mark.timeout(20)
def test_an_endless_line_costs_linear_time_and_bounded_memory() -> None:
    """64 MiB without a line end in 16 KiB chunks: each chunk used to copy the whole buffer (minutes, and 64 MiB)."""
    chunk = b"a" * 16384
    stream = EventStream(itertools.chain([b"data: x\n\n"], itertools.repeat(chunk, 4096), [b"\n\ndata: y\n\n"]))
    tracemalloc.start()
    try:
        assert [e.data for e in stream] == ["x", "y"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * _CAP
