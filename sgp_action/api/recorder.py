"""A record of every API request and answer of a run (`debug: true`), as JSON Lines a user can attach to an issue.

Each line is one attempt: method, path, query, status (or the transport error), both sets of headers, both bodies cut
to MAX_BODY_CHARS, the time taken; a build log stream gets one more line with its event and line counts when it
ends. Nothing secret may reach the file, whatever the server echoes: headers that carry credentials (`x-api-key`,
`authorization`, cookies, anything naming a token, secret or password) keep only their name, and every known secret
value (the API key, the forge token) is masked wherever it appears, in bodies, queries and messages alike. The
account id is not a secret and stays. The file is bounded (MAX_FILE_BYTES) and written by one lock, so the threads
of a run (log follower, cleanup pool) never interleave lines.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

#: How much of each body is kept: enough to see its shape and any error, not a whole listing or manifest.
MAX_BODY_CHARS = 4096
#: The file stops growing here (a long cleanup sweep or a chatty stream cannot fill the runner's disk).
MAX_FILE_BYTES = 64 * 2**20
#: Header names (lowercase) whose values are credentials, and words that mark one in any other header's name.
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie"})
SECRET_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth", "cookie", "session")
REDACTED = "<redacted>"
MASK = "***"


def _secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(word in lowered for word in SECRET_WORDS)


def record_path(temp_dir: str | None) -> Path:
    """Where a run's record goes: `$RUNNER_TEMP` (or the system's temp dir), named by the time and process."""
    import tempfile

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(temp_dir or tempfile.gettempdir()) / f"sgp-action-api-{stamp}-{os.getpid()}.jsonl"


class Recorder:
    """Appends one JSON line per API attempt to `path`, with every secret in `secrets` masked."""

    def __init__(self, path: Path, secrets: Iterable[str | None] = ()) -> None:
        self.path = Path(path)
        # Longest first, so a secret holding another is masked whole; very short values would mask ordinary text.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._lock = threading.Lock()
        self._written = 0
        self._full = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")

    def mask(self, text: str) -> str:
        """`text` with every known secret value replaced by `***`."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """Headers with credential values replaced (their names stay, so a reader sees they were sent)."""
        return {
            str(name): REDACTED if _secret_header(str(name)) else self.mask(str(value))
            for name, value in (headers or {}).items()
        }

    def body(self, value: Any) -> str | None:
        """A body as text (JSON for objects), masked, cut to MAX_BODY_CHARS; None when there is none."""
        if value is None:
            return None
        if isinstance(value, bytes):
            text = value[: MAX_BODY_CHARS * 4].decode("utf-8", "replace")
        elif isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, default=str)
            except ValueError:
                text = repr(value)
        text = self.mask(text)
        return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + f"... ({len(text)} characters)"

    def exchange(
        self,
        *,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        request_headers: Mapping[str, str] | None,
        request_body: Any,
        status: int | None,
        response_headers: Mapping[str, str] | None = None,
        response_body: Any = None,
        error: str | None = None,
        seconds: float | None = None,
        stream: bool = False,
    ) -> None:
        """Record one attempt; an attempt that got no answer has `status` None and the reason in `error`."""
        entry: dict[str, Any] = {
            "kind": "stream" if stream else "call",
            "method": method,
            "path": self.mask(path),
            "query": {str(k): self.mask(str(v)) for k, v in (query or {}).items()},
            "request_headers": self.headers(request_headers),
            "request_body": self.body(request_body),
            "status": status,
            "response_headers": self.headers(response_headers),
            "response_body": self.body(response_body),
        }
        if error is not None:
            entry["error"] = self.mask(error)[:MAX_BODY_CHARS]
        if seconds is not None:
            entry["seconds"] = round(seconds, 3)
        self._write(entry)

    def attempt(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        json_body: Any,
        data: Any,
        began: float,
        stream: bool,
        response: requests.Response | None,
        error: str | None = None,
    ) -> None:
        """Record one attempt of `Transport.request`: what was sent, and the answer (or why there was none)."""
        sent = json_body
        if sent is None and data is not None:  # a multipart upload: its size and type, never its bytes
            size = getattr(data, "len", None)
            sent = f"<{headers.get('Content-Type', 'a body').split(';')[0]}, {size if size is not None else '?'} bytes>"
        answer: Any = None
        if response is not None and not stream:
            answer = getattr(response, "_content", None) or None  # what load_body or body_text read, if anything
        self.exchange(
            method=method,
            path=path,
            query=query,
            request_headers=headers,
            request_body=sent,
            status=None if response is None else response.status_code,
            response_headers=None if response is None else response.headers,
            response_body=answer,
            error=error,
            seconds=time.monotonic() - began,
            stream=stream,
        )

    def stream_end(self, path: str, *, events: int, lines: int, last_event_id: str) -> None:
        """Record how much a build log stream delivered before it ended."""
        entry = {"kind": "stream-end", "path": self.mask(path), "events": events, "lines": lines}
        entry["last_event_id"] = self.mask(last_event_id)[:200]
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        entry = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **entry}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            if self._full or self._file.closed:
                return
            if self._written + len(line) > MAX_FILE_BYTES:
                self._full = True
                line = json.dumps({"kind": "note", "text": f"the record stops here ({MAX_FILE_BYTES} bytes)"}) + "\n"
            self._file.write(line)
            self._file.flush()
            self._written += len(line)

    def close(self) -> None:
        """Close the file (later records are dropped)."""
        with self._lock:
            self._file.close()
