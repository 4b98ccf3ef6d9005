"""HTTP transport for the SGP API: one session, auth headers, timeouts, retries and deadlines.

What an answer means (its body read within bounds, a status turned into an error) is `sgp_action.api.answers`.

Retry policy (docs/sgp-api.md#errors-and-retries, docs/sgp-api.md#creates-are-not-idempotent):

* Idempotent calls (every GET, the build cancel, which the server treats as a no-op when repeated
(docs/sgp-api.md#cancel-a-build), and the
  deployment DELETE, which leaves the record unchanged when it fails (docs/sgp-api.md#delete-a-deployment)) retry on
  connection errors, timeouts,
  429 and 5xx, with capped exponential backoff and equal jitter, honouring `Retry-After` (seconds or an HTTP date,
  capped at `retry_after_cap`).
* Creates (POST) are never retried blindly, because a lost answer may hide a created build or deployment and the API
  has no idempotency key. They retry only when the request provably never reached the server (the TCP connection
  could not be opened, or the connect timed out) and on 429, which refuses a request without acting on it. A 5xx, a
  read timeout or a connection lost after sending raises at once.

Every call ends by its deadline (an argument, or the `sgp_action.api.deadlines` scope the phases set): each attempt's
timeouts are capped by the time left, a watchdog cuts a body still dripping in at the deadline, and no retry starts
without time for it. A call stopped that way raises `RequestDeadlineError` (a timeout, exit 4), not an API error.
Answers are read by `sgp_action.api.answers`, never whole by `requests`: a server can answer with gigabytes.

Redirects are never followed: `requests` would resend the custom `x-api-key` header to whatever host a redirect
names. A 3xx becomes an error asking for the final base URL. The API key never appears in a message or a log line.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from sgp_action import USER_AGENT
from sgp_action.api.answers import load_body, redacted_url, status_error
from sgp_action.api.deadlines import Watchdog, WatchedAdapter, current_deadline, current_watchdog
from sgp_action.api.recorder import Recorder
from sgp_action.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    InputError,
    RequestDeadlineError,
)

logger = logging.getLogger(__name__)

# A request body for one attempt: (data, content type). A factory is called again for every attempt so that a
# streamed upload starts from the beginning of its file.
BodyFactory = Callable[[], tuple[Any, str]]
#: A retry starts only when at least this much time is left before the call's deadline.
MIN_ATTEMPT_SECONDS = 1.0
#: A failure this close to the deadline counts as caused by it (timeouts capped to the time left end just before).
DEADLINE_SLACK = 0.05
#: The end of a call made outside any deadline scope, retries included (seconds).
DEFAULT_CALL_LIMIT = 300.0


def join_url(base_url: str, path: str) -> str:
    """`base + path`, keeping any path prefix of the base (docs/sgp-api.md#base-url-path-prefix); never `urljoin`."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def backoff_delay(attempt: int, base: float, cap: float, jitter: Callable[[], float] = random.random) -> float:
    """The delay before retry number `attempt` (0-based): capped exponential with equal jitter."""
    ceiling = min(cap, base * (2.0**attempt))
    return ceiling / 2 + jitter() * ceiling / 2


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """The system's words for a transport failure (`Connection refused`), not urllib3's whole retry chain.

    requests wraps the OS error several times over (pool, URL with its query, retry count); the user needs only the
    reason, and the URL is already in the message.
    """
    text = str(exc)
    match = _ERRNO_TEXT.search(text)
    if match:
        return match.group(1).strip()
    for phrase in ("Read timed out", "Connection aborted", "Connection reset by peer", "Remote end closed connection"):
        if phrase in text:
            return phrase
    return text if len(text) <= limit else text[: limit - 3] + "..."


def never_sent(exc: BaseException) -> bool:
    """True when the connection could not even be opened, so the server cannot have seen the request."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError):
            return True
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return False


def _capped(timeout: float, left: float | None) -> float:
    """A configured timeout, shortened to the time left before a deadline (never zero: that means no wait)."""
    return timeout if left is None else max(min(timeout, left), 0.001)


def environment_session(base_url: str) -> requests.Session:
    """A session whose proxies and CA bundle come from the environment as it is now, for requests to `base_url`.

    With `trust_env` requests looks up proxies, `no_proxy` and `.netrc` again for every request (about 7% of a
    cleanup sweep); every request of a transport goes to one host, so the answer is read once here.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))  # empty when no_proxy names the host
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class Transport:
    """A `requests` session bound to one SGP base URL and one set of credentials."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        account_id: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 60.0,
        call_limit: float = DEFAULT_CALL_LIMIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise InputError(f"base-url {redacted_url(base_url)!r} is not an http(s) URL: set it like https://host")
        if not api_key:
            raise InputError("api-key is empty: set the api-key input (or SGP_API_KEY)")
        if not account_id:
            raise InputError("account-id is empty: set the account-id input (or SGP_ACCOUNT_ID)")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._account_id = account_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.call_limit = call_limit
        self._owns_session = session is None
        self.session = session if session is not None else environment_session(self.base_url)
        if session is None:
            adapter = WatchedAdapter()
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.sleep: Callable[[float], None] = sleep
        self.jitter: Callable[[], float] = jitter
        #: With `debug: true`, every attempt is written here (sgp_action.api.recorder); None otherwise.
        self.recorder: Recorder | None = None

    def __repr__(self) -> str:
        return f"Transport({redacted_url(self.base_url)!r}, account_id={self._account_id!r}, api_key=<hidden>)"

    def close(self) -> None:
        """Close the session when this transport created it, and the record."""
        if self._owns_session:
            self.session.close()
        if self.recorder is not None:
            self.recorder.close()

    def url(self, path: str) -> str:
        """The full URL of an API path such as `/v5/builds`."""
        return join_url(self.base_url, path)

    def headers(self, accept: str = "application/json") -> dict[str, str]:
        """The headers every call sends (docs/sgp-api.md#authentication-and-base-url)."""
        return {
            "x-api-key": self._api_key,
            "x-selected-account-id": self._account_id,
            "User-Agent": USER_AGENT,
            "Accept": accept,
        }

    def redact(self, text: str) -> str:
        """`text` with the API key masked (a server may echo it in an error body)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def backoff(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0-based): capped exponential with equal jitter."""
        return backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.jitter)

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: BodyFactory | None = None,
        stream: bool = False,
        accept: str = "application/json",
        extra_headers: Mapping[str, str] | None = None,
        retry_log: list[str] | None = None,
        deadline: float | None = None,
    ) -> requests.Response:
        """Send one API call with the retry policy of this module; return a 2xx response or raise an ApiError.

        `retry_log`, when given, receives the reason of every retried attempt. `deadline` (a `time.monotonic()`
        value; by default the current `deadline_scope`'s) bounds the whole call, retries included, and raises
        RequestDeadlineError when it stops the call. Streams get no read timeout and no deadline, so a quiet log
        stream is never cut (docs/sgp-api.md#build-log-stream-quirks): their reader closes them, and while one is being
        opened (retries and backoff included) it cuts the call with a `Watchdog` of its own around it.
        """
        url = self.url(path)
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        cutter = current_watchdog() if stream else None  # the reader's; a deadline's watchdog would shadow it
        if stream:
            deadline = None
        elif deadline is None:
            # Outside a phase (teardown, cleanup, replace-previous, doctor) a call still has an end: a server that
            # drips its answer must not hold the run for ever.
            deadline = current_deadline() or time.monotonic() + self.call_limit
        attempt = 0
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise self._deadline_error(method, path, url, "the time limit had passed before it was sent")
            if cutter is not None and cutter.fired:
                raise self._deadline_error(method, path, url, "its reader stopped it before an answer came")
            timeout = (_capped(self.connect_timeout, left), None if stream else _capped(self.read_timeout, left))
            headers = {**self.headers(accept), **(extra_headers or {})}
            data = None
            if body is not None:
                data, headers["Content-Type"] = body()
            error: ApiError
            retry_after: float | None = None
            answered = False
            record = functools.partial(self._record, method, path, clean, headers, json, data, time.monotonic(), stream)

            watch: AbstractContextManager[Any] = Watchdog(deadline) if deadline is not None else nullcontext()
            try:
                with watch:
                    response = self.session.request(
                        method,
                        url,
                        params=clean,
                        json=json,
                        data=data,
                        headers=headers,
                        timeout=timeout,
                        stream=True,  # bodies are read by load_body, bounded; requests would read them whole
                        allow_redirects=False,
                    )
                    if not stream and response.status_code < 300:
                        load_body(method, path, response)
            except requests.exceptions.ConnectTimeout as exc:
                record(None, f"connect timeout: {short_reason(exc)}")
                reason, retryable = "connect timeout", True
                error = self._transport_error(
                    ApiTimeoutError, method, path, url, f"connect timed out ({short_reason(exc)})"
                )
            except requests.exceptions.Timeout as exc:
                record(None, f"read timeout: {short_reason(exc)}")
                reason, retryable = "read timeout", idempotent
                error = self._transport_error(
                    ApiTimeoutError, method, path, url, f"no answer in time ({short_reason(exc)})"
                )
            except requests.exceptions.RequestException as exc:
                record(None, f"connection error: {short_reason(exc)}")
                unsent = never_sent(exc)
                reason, retryable = "connection error", idempotent or unsent
                if unsent:
                    what = f"could not connect ({short_reason(exc)})"
                elif idempotent:
                    what = f"the connection broke ({short_reason(exc)})"
                else:
                    what = (
                        f"the connection broke after sending ({short_reason(exc)}), so the server may have acted on it"
                    )
                error = self._transport_error(ApiConnectionError, method, path, url, what)
            else:
                if response.status_code < 300:
                    record(response)
                    return response
                answered = True
                reason = f"HTTP {response.status_code}"
                retryable = response.status_code == 429 or (idempotent and response.status_code >= 500)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                error = status_error(method, path, response, redact=self.redact, retries=attempt)
                record(response)
                response.close()
            if (getattr(watch, "fired", False) or (cutter is not None and cutter.fired)) and not answered:
                raise self._deadline_error(method, path, url, "no complete answer when the time limit passed")
            if deadline is not None and not answered and time.monotonic() >= deadline - DEADLINE_SLACK:
                raise self._deadline_error(method, path, url, f"cut when the time limit passed ({reason})")
            if not retryable or attempt >= self.max_retries:
                raise error
            delay = self.backoff(attempt) if retry_after is None else min(retry_after, self.retry_after_cap)
            if deadline is not None and deadline - time.monotonic() - delay < MIN_ATTEMPT_SECONDS:
                raise self._deadline_error(method, path, url, f"no time left to retry after {reason}") from error
            logger.warning(
                "%s %s: %s; retry %d of %d in %.1f s", method, path, reason, attempt + 1, self.max_retries, delay
            )
            if retry_log is not None:
                retry_log.append(reason)
            if cutter is None:
                self.sleep(delay)
            elif cutter.wait(delay):
                raise self._deadline_error(
                    method, path, url, f"its reader stopped it while it backed off ({reason})"
                ) from error
            attempt += 1

    def _record(self, *attempt: Any) -> None:
        """Write one attempt to the record (with `debug: true`); a failure to write never fails the call."""
        if self.recorder is not None:
            try:
                self.recorder.attempt(*attempt)
            except (OSError, ValueError) as exc:
                logger.debug("could not write the API record: %s", exc)

    def _deadline_error(self, method: str, path: str, url: str, what: str) -> RequestDeadlineError:
        where = redacted_url(self.base_url)
        message = f"{method} {path}: {what}; the server at {where} is slow or unreachable, or the time limit too short"
        return RequestDeadlineError(self.redact(message))

    def _transport_error(self, cls: type[ApiError], method: str, path: str, url: str, what: str) -> ApiError:
        where = redacted_url(self.base_url)
        message = f"{method} {path}: {what}; check base-url ({where}) and the network"
        return cls(self.redact(message), method=method, url=redacted_url(url))
