"""A small REST client for the forge's issue comments, commit statuses and (GitHub only) deployments.

The three forges share the paths used here (`/repos/{o}/{r}/issues/{n}/comments`, `/issues/comments/{id}`,
`/statuses/{sha}`) and accept `Authorization: token <t>` (docs/runner.md#github-gitea-and-forgejo). Paging differs:
GitHub takes `per_page` (max 100), Gitea/Forgejo take `limit` (max 50); both take `page`, so both are sent.

A forge hiccup is retried a little (429 and 502/503/504 answers, connection errors), honouring `Retry-After` up to
a cap: the comment and the cleanup's PR states are worth a few seconds, never a stalled deploy. Creating a comment
is not idempotent, so it is sent again only when the forge surely did not take it (429, 503, no connection).

With a `budget`, every request and retry of the client ends by one shared deadline. A per-read timeout does not
bound a forge that drips its answer a byte at a time, so a watchdog shuts the socket when the time is up; callers
that must not wait past the budget at all (a hang in name resolution or in the headers) run the client in a thread
they stop waiting for, and `abandon` it so that it sends nothing more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from sgp_action import USER_AGENT
from sgp_action.api.transport import backoff_delay, never_sent, parse_retry_after
from sgp_action.errors import ActionError

log = logging.getLogger(__name__)

#: Seconds per forge request: a slow forge must not hold a deploy up for long.
TIMEOUT = 15.0
#: Seconds for one group of forge calls (the PR comment and its status; a GitHub deployment's start or end), and
#: the extra wait for a stuck request before the run stops waiting for it.
FORGE_BUDGET = 10.0
FORGE_GRACE = 1.0
CONNECT_TIMEOUT = 5.0
#: The most bytes read from one forge answer (a page of 50 comments of GitHub's largest size fits).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
#: Gitea's default MAX_RESPONSE_ITEMS is 50; GitHub allows 100. 50 works on both.
PAGE_SIZE = 50
#: A PR with more comments than this is not searched further (a bound against a forge that ignores `page`).
MAX_PAGES = 40
#: Attempts per request, and the longest wait between two (a `Retry-After` beyond it is cut to it).
ATTEMPTS = 3
MAX_WAIT = 10.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Answers that mean the forge did not act on the request, so even a create may be sent again.
NOT_TAKEN_STATUSES = frozenset({429, 503})


def _shut(response: requests.Response) -> None:
    """Watchdog: shut the socket under a response whose body is still being read, so the read ends now."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the read has ended anyway
            sock.shutdown(socket.SHUT_RDWR)


class ForgeError(ActionError):
    """The forge API refused or failed a request (only ever reported as a warning)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Comment:
    """One issue comment: its id and markdown body."""

    id: int
    body: str


class ForgeClient:
    """Comments and statuses of one repository, through `api_url` with a token."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.budget = budget
        self._sleep = sleep
        self._clock = clock
        self._deadline = None if budget is None else clock() + budget
        self._abandoned = threading.Event()
        self._session = session or requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"token {token}",
                "Accept": "application/vnd.github+json",
                "User-Agent": USER_AGENT,
            }
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._session.close()

    def abandon(self) -> None:
        """Send nothing more: the caller stopped waiting (a late write could undo what a newer run wrote)."""
        self._abandoned.set()
        self._session.close()

    @property
    def abandoned(self) -> bool:
        """True once `abandon` was called."""
        return self._abandoned.is_set()

    def _remaining(self, method: str, path: str) -> float:
        """Seconds left for this request (at most TIMEOUT); ForgeError when the budget is spent or abandoned."""
        if self._abandoned.is_set():
            raise ForgeError(f"{method} {path}: not sent, the forge calls were given up")
        if self._deadline is None:
            return TIMEOUT
        left = self._deadline - self._clock()
        if left <= 0:
            raise ForgeError(f"{method} {path}: no answer within the forge budget of {self.budget:g} s")
        return min(TIMEOUT, left)

    def _request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        url = f"{self.api_url}/repos/{self.repository}{path}"
        for attempt in range(1, ATTEMPTS + 1):
            wait: float | None = None
            left = self._remaining(method, path)
            try:
                timeout = (min(CONNECT_TIMEOUT, left), left)
                response = self._session.request(method, url, timeout=timeout, stream=True, **kwargs)
            except requests.ConnectionError as exc:
                # A connection never opened cannot have created anything; a broken one may have.
                if attempt == ATTEMPTS or (not idempotent and not never_sent(exc)):
                    raise ForgeError(f"{method} {path}: {type(exc).__name__}") from None
            except requests.RequestException as exc:
                if attempt == ATTEMPTS or not idempotent:
                    raise ForgeError(f"{method} {path}: {type(exc).__name__}") from None
            else:
                with response:
                    status = response.status_code
                    retry = status in (RETRY_STATUSES if idempotent else NOT_TAKEN_STATUSES)
                    if status < 300 or not retry or attempt == ATTEMPTS:
                        return self._result(method, path, response, self._read(method, path, response))
                    wait = parse_retry_after(response.headers.get("Retry-After"))
            delay = min(MAX_WAIT, wait if wait is not None else backoff_delay(attempt - 1, 1.0, MAX_WAIT))
            if self._deadline is not None and self._clock() + delay >= self._deadline:
                raise ForgeError(f"{method} {path}: failed, and no time is left in the forge budget to try again")
            log.info("forge: %s %s failed (attempt %d of %d); again in %.1f s", method, path, attempt, ATTEMPTS, delay)
            self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(self, method: str, path: str, response: requests.Response) -> bytes:
        """The answer's body, at most MAX_ANSWER_BYTES, read by the request's deadline (the watchdog cuts a drip)."""
        left = self._remaining(method, path)
        fired = threading.Event()

        def cut() -> None:
            fired.set()
            _shut(response)

        watchdog = threading.Timer(left, cut)
        watchdog.daemon = True
        watchdog.start()
        data = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise ForgeError(f"{method} {path}: the answer is over {MAX_ANSWER_BYTES // 2**20} MB")
                if fired.is_set():
                    break
        except (requests.RequestException, OSError) as exc:
            if not fired.is_set():
                raise ForgeError(f"{method} {path}: the answer was cut ({type(exc).__name__})") from None
        finally:
            watchdog.cancel()
        if fired.is_set():
            raise ForgeError(f"{method} {path}: the forge sent its answer too slowly (not done in {left:.1f} s)")
        return bytes(data)

    @staticmethod
    def _result(method: str, path: str, response: requests.Response, content: bytes) -> Any:
        if response.status_code >= 300:
            what = "deployments" if "/deployments" in path else "issues and statuses"
            raise ForgeError(
                f"{method} {path}: HTTP {response.status_code}; check that github-token may write {what} "
                "of this repository",
                status_code=response.status_code,
            )
        try:
            return json.loads(content) if content else None
        except ValueError:
            raise ForgeError(f"{method} {path}: the answer is not JSON") from None

    def list_comments(self, number: int) -> list[Comment]:
        """Every comment of issue/PR `number`, following pages until a short or empty one."""
        found: list[Comment] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"per_page": PAGE_SIZE, "limit": PAGE_SIZE, "page": page}
            items = self._request("GET", f"/issues/{number}/comments", params=params)
            if not isinstance(items, list):
                raise ForgeError(f"GET /issues/{number}/comments: expected a list")
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    found.append(Comment(item["id"], str(item.get("body") or "")))
            if len(items) < PAGE_SIZE:
                break
        return found

    def create_comment(self, number: int, body: str) -> int:
        """Post a new comment on issue/PR `number`; its id."""
        item = self._request("POST", f"/issues/{number}/comments", idempotent=False, json={"body": body})
        return int(item["id"]) if isinstance(item, dict) and "id" in item else 0

    def edit_comment(self, comment_id: int, body: str) -> None:
        """Replace the body of comment `comment_id`."""
        self._request("PATCH", f"/issues/comments/{comment_id}", json={"body": body})

    def delete_comment(self, comment_id: int) -> None:
        """Delete comment `comment_id`; one already gone (404) is fine."""
        try:
            self._request("DELETE", f"/issues/comments/{comment_id}")
        except ForgeError as exc:
            if exc.status_code != 404:
                raise

    def pull_state(self, number: int) -> str | None:
        """`open` or `closed` for PR `number`; None when the forge does not know it (404)."""
        try:
            item = self._request("GET", f"/pulls/{number}")
        except ForgeError as exc:
            if exc.status_code == 404:
                return None
            raise
        state = item.get("state") if isinstance(item, dict) else None
        return str(state).lower() if state else None

    def create_status(self, sha: str, state: str, context: str, description: str, target_url: str) -> None:
        """Post a commit status (`state`: pending, success, failure, error)."""
        payload = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            payload["target_url"] = target_url
        self._request("POST", f"/statuses/{sha}", json=payload)

    def create_deployment(self, payload: dict[str, Any]) -> int:
        """Create a GitHub deployment (`POST /deployments`); its id (0 when the answer has none)."""
        item = self._request("POST", "/deployments", idempotent=False, json=payload)
        value = item.get("id") if isinstance(item, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def create_deployment_status(self, deployment_id: int, payload: dict[str, Any]) -> None:
        """Add a status (`in_progress`, `success`, `failure`, `error`, `inactive`) to deployment `deployment_id`."""
        self._request("POST", f"/deployments/{deployment_id}/statuses", json=payload)

    def list_deployments(self, environment: str) -> list[dict[str, Any]]:
        """The newest GitHub deployments of `environment` (one page: older ones were made inactive by newer ones)."""
        items = self._request("GET", "/deployments", params={"environment": environment, "per_page": PAGE_SIZE})
        if not isinstance(items, list):
            raise ForgeError("GET /deployments: expected a list")
        return [item for item in items[:PAGE_SIZE] if isinstance(item, dict) and isinstance(item.get("id"), int)]
