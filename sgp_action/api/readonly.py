"""A view of an HTTP API that can only read: the doctor's door to SGP and to the forge.

`ReadOnlySession` refuses every method but GET and HEAD before anything is sent, so no code path built on it can
create, cancel or delete. `ReadOnlyClient` puts an `SGPClient` on such a session (lists and gets only) and adds
`probe`, one raw GET whose answer is judged by its status, headers and body (is this SGP at all?) rather than
turned into an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from sgp_action.api.answers import error_detail
from sgp_action.api.client import SGPClient
from sgp_action.api.transport import join_url, short_reason

C = TypeVar("C", bound="ReadOnlyClient")

READ_METHODS = frozenset({"GET", "HEAD"})


class WriteRefused(RuntimeError):
    """A read-only code path tried to send a write; a bug, never a user error."""


class ReadOnlySession(requests.Session):
    """A `requests` session that sends only GET and HEAD."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Refuse any method but GET and HEAD, then send as `requests` does."""
        verb = method.decode() if isinstance(method, bytes) else method
        if verb.upper() not in READ_METHODS:
            raise WriteRefused(f"the doctor only reads; refused {verb.upper()}")
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """The last door: a prepared request that is not a read never leaves."""
        if (request.method or "").upper() not in READ_METHODS:
            raise WriteRefused(f"the doctor only reads; refused {request.method}")
        return super().send(request, **kwargs)


@dataclass(frozen=True)
class Probe:
    """One raw GET: the answer's status, `Location`, `Content-Type`, body (cut at `body.MAX_ERROR_BYTES`) and the
    server's reason (redacted), or, when no answer came, why (`failure`; `tls` when the TLS handshake failed)."""

    status: int = 0
    location: str = ""
    content_type: str = ""
    content: bytes = b""
    detail: str = ""
    failure: str = ""
    tls: bool = False

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


def probe_get(
    session: requests.Session, url: str, *, timeout: float, allow_redirects: bool = False, **kwargs: Any
) -> Probe:
    """One GET through `session` as a `Probe`; by default no redirect is followed (a key must not travel)."""
    try:
        response = session.get(url, timeout=(min(10.0, timeout), timeout), allow_redirects=allow_redirects, **kwargs)
    except requests.exceptions.RequestException as exc:
        return Probe(failure=short_reason(exc), tls=isinstance(exc, requests.exceptions.SSLError))
    with response:
        detail = error_detail(response)  # reads the body once, capped (body.MAX_ERROR_BYTES)
        content = response.content
    return Probe(
        status=response.status_code,
        location=response.headers.get("Location", ""),
        content_type=response.headers.get("Content-Type", ""),
        content=content,
        detail=detail,
    )


class ReadOnlyClient:
    """SGP through a read-only session: `probe` for a raw GET, `client()` for typed lists and gets."""

    def __init__(self, base_url: str, api_key: str, account_id: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.account_id = account_id
        self.timeout = timeout
        self._session = ReadOnlySession()
        self._client: SGPClient | None = None

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()

    def client(self) -> SGPClient:
        """The typed client on the read-only session: one attempt per call, the probe's timeouts."""
        if self._client is None:
            self._client = SGPClient.for_url(
                self.base_url,
                self.api_key,
                self.account_id,
                connect_timeout=min(10.0, self.timeout),
                read_timeout=self.timeout,
                max_retries=1,
                session=self._session,
            )
        return self._client

    def probe(self, path: str, params: Mapping[str, Any] | None = None) -> Probe:
        """One GET with the API's headers, no retry and no redirect followed; the reason redacted."""
        url = join_url(self.base_url, path)
        found = probe_get(
            self._session, url, timeout=self.timeout, params=params, headers=self.client().transport.headers()
        )
        return Probe(**{**found.__dict__, "detail": self.redact(found.detail)})

    def redact(self, text: str) -> str:
        """`text` with the API key masked (a server may echo it)."""
        return self.client().transport.redact(text)
