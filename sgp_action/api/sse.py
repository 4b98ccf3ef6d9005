"""Server-Sent Events as the WHATWG standard defines them (docs/sgp-api.md#the-standards-rules), parsed by sseclient-py.

sseclient-py 1.9.0 departs from the standard in ways listed in docs/sgp-api.md#where-sseclient-py-departs. Wrapping its
output cannot fix all of
them (a leading BOM or an LF line followed by a CRLF blank line is already mis-parsed inside the library, and a block
holding only an `id` never comes out), so the byte stream is normalised first, by `_Normaliser`:

* the stream is cut into lines at CRLF, LF or a lone CR, also when `\\r` and `\\n` arrive in different chunks;
* one leading U+FEFF BOM is dropped; bytes that are not UTF-8 become U+FFFD, as a browser decodes them;
* `id` and `retry` lines are consumed here, where the standard's stream-wide state lives: an `id` holding U+0000
  is ignored, `retry` counts only when it is all ASCII digits, and the current last-event-ID is written into every
  block handed on, so it carries over to later events as the standard says;
* a line longer than MAX_LINE_BYTES, or an event longer than MAX_EVENT_BYTES, is dropped with a warning as its
  bytes arrive, never buffered (a server can send a line that never ends);
* a block reaches sseclient-py only once its blank line has arrived, as canonical `LF` lines ending in one blank
  line, so the final event that never got its blank line is dropped.

sseclient-py then does the field parsing (first colon, one leading space, `data` joined with LF, `message` default,
no dispatch without data). The result is the same however the bytes are split into chunks.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sseclient

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")
#: A server can send a line, or an event of many lines, that never ends: beyond these it is dropped, not buffered.
MAX_LINE_BYTES = 2**20
MAX_EVENT_BYTES = 2**20


@dataclass(frozen=True)
class SSEEvent:
    """A dispatched event: `type` is `message` for unnamed events; `last_event_id` carries over
    (docs/sgp-api.md#the-standards-rules)."""

    type: str
    data: str
    last_event_id: str


class _Normaliser:
    """Turns arbitrary byte chunks into complete, canonical event blocks for sseclient-py."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.reconnection_time_ms: int | None = None
        self._head = b""  # the first bytes, until we know whether they start with a BOM
        self._started = False
        # The unfinished line as pieces, joined once when its end arrives: a line spread over many chunks costs
        # linear time, not a copy of the whole buffer per chunk.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._overlong = False  # the unfinished line passed MAX_LINE_BYTES: its bytes are dropped as they come
        self._swallow_lf = False  # the previous chunk ended in CR: a leading LF completes that CRLF
        self._block: list[bytes] = []
        self._block_size = 0
        self._block_overlong = False  # the unfinished event passed MAX_EVENT_BYTES: it is dropped at its end

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next chunk; return the blocks it completed."""
        if not self._started:
            self._head += chunk
            if len(self._head) < len(_BOM) and _BOM.startswith(self._head):
                return []
            chunk = self._head[len(_BOM) :] if self._head.startswith(_BOM) else self._head
            self._started = True
            self._head = b""
        if self._swallow_lf and chunk:
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
            self._swallow_lf = False
        # The unfinished line never holds a line ending (a final CR was consumed above): only the chunk is scanned.
        blocks: list[bytes] = []
        start = 0
        for match in _LINE_END.finditer(chunk):
            self._keep(chunk[start : match.start()])
            line = b"".join(self._pending)
            overlong = self._overlong
            self._pending, self._pending_size, self._overlong = [], 0, False
            block = None if overlong else self._line(line)
            if block is not None:
                blocks.append(block)
            start = match.end()
            # A CR that ends the chunk ends its line now (no waiting for the next chunk); if the next chunk starts
            # with LF, that LF belongs to this CR.
            if match.group() == b"\r" and start == len(chunk):
                self._swallow_lf = True
        self._keep(chunk[start:])
        return blocks

    def _keep(self, piece: bytes) -> None:
        """Add to the unfinished line, up to MAX_LINE_BYTES; past that the line is dropped, with one warning."""
        if not piece or self._overlong:
            return
        if self._pending_size + len(piece) > MAX_LINE_BYTES:
            logger.warning("the build log stream sent a line over %d bytes: it is dropped", MAX_LINE_BYTES)
            self._pending, self._pending_size, self._overlong = [], 0, True
            return
        self._pending.append(piece)
        self._pending_size += len(piece)

    def _line(self, raw: bytes) -> bytes | None:
        if not raw:
            return self._dispatch()
        text = raw.decode("utf-8", "replace")
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "id":
            if "\0" not in value:
                self.last_event_id = value
            return None
        if name == "retry":
            if value and value.isascii() and value.isdigit():
                self.reconnection_time_ms = int(value)
            return None
        if name and not self._block_overlong:  # comments (empty field name) need not reach sseclient-py
            encoded = text.encode("utf-8")
            if self._block_size + len(encoded) > MAX_EVENT_BYTES:
                logger.warning("the build log stream sent an event over %d bytes: it is dropped", MAX_EVENT_BYTES)
                self._block, self._block_size, self._block_overlong = [], 0, True
            else:
                self._block.append(encoded)
                self._block_size += len(encoded)
        return None

    def _dispatch(self) -> bytes | None:
        self._block_overlong = False
        if not self._block:
            return None
        lines = [*self._block, f"id: {self.last_event_id}".encode()]
        self._block, self._block_size = [], 0
        return b"\n".join(lines) + b"\n\n"


class EventStream:
    """Iterates the standard events of a byte-chunk iterable (for example a response's raw stream).

    After iteration, `last_event_id` and `reconnection_time_ms` hold what a reconnect should use
    (docs/sgp-api.md#the-standards-rules).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._normaliser = _Normaliser()

    @property
    def last_event_id(self) -> str:
        """The last-event-ID buffer: send it as `Last-Event-ID` on reconnect when not empty."""
        return self._normaliser.last_event_id

    @property
    def reconnection_time_ms(self) -> int | None:
        """The last valid `retry` value, or None when the server never sent one."""
        return self._normaliser.reconnection_time_ms

    def _blocks(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk:
                yield from self._normaliser.feed(bytes(chunk))
        # Whatever is left without its blank line is an unterminated event: the standard discards it.

    def __iter__(self) -> Iterator[SSEEvent]:
        client: Any = sseclient.SSEClient(self._blocks())
        for event in client.events():
            yield SSEEvent(type=str(event.event or "message"), data=str(event.data), last_event_id=str(event.id or ""))


def log_lines(events: Iterable[SSEEvent]) -> Iterator[str]:
    """The build log lines of SGP's log stream (docs/sgp-api.md#build-logs), without their event ids."""
    for _event_id, line in log_entries(events):
        yield line


def log_entries(events: Iterable[SSEEvent]) -> Iterator[tuple[str, str]]:
    """`(event id, line)` for each build log line of SGP's log stream (docs/sgp-api.md#build-logs); the id is the
    stream's last-event-ID at that event, empty when the server sends none.

    Only unnamed (`message`) events count; the SDK drops named ones too. A `data` that is JSON must be an object with
    a string `line`, which is yielded without its line ending; other JSON (a heartbeat, a status object) is skipped
    and logged at debug. A `data` that is not JSON at all is yielded as it is, so a server sending plain-text lines
    still shows its log.
    """
    for event in events:
        if event.type != "message":
            logger.debug("ignoring named SSE event %r", event.type)
            continue
        try:
            payload = json.loads(event.data)
        except ValueError:
            yield event.last_event_id, event.data.rstrip("\r\n")
            continue
        line = payload.get("line") if isinstance(payload, dict) else None
        if isinstance(line, str):
            yield event.last_event_id, line.rstrip("\r\n")
        else:
            logger.debug("ignoring SSE data without a string 'line': %.200s", event.data)
