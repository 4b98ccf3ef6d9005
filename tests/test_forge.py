"""The forge REST client against a tiny local forge API (comments with paging, statuses), recording requests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sgp_action.api.deadlines import call_with_deadline
from sgp_action.ci.forge import PAGE_SIZE, ForgeClient, ForgeError

REPO = "demo/sample-agent"


@dataclass
class FakeForge:
    """Issue comments and commit statuses of one repository; `fail` makes every request answer HTTP 500."""

    url: str = ""
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {"issue": n, "body": text}
    statuses: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)  # method, path, headers, body
    fail: bool = False
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # forced (status, headers), in order
    pulls: dict[int, str] = field(default_factory=dict)  # PR number -> state
    statuses_forbidden: bool = False  # a token without repository write access (Gitea)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)  # GitHub deployments: id -> created body
    deployment_statuses: list[dict[str, Any]] = field(default_factory=list)  # {"deployment": id, **body}
    deployments_forbidden: bool = False  # a token without `deployments: write` (GitHub answers 403)
    max_page: int = 50
    next_id: int = 1
    list_barrier: threading.Barrier | None = None  # the first lookups wait for each other (overlapping runs)
    drip: str = ""  # "headers" or "body": answer every GET a byte at a time, until `stop`
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, issue: int, body: str) -> int:
        comment_id, self.next_id = self.next_id, self.next_id + 1
        self.comments[comment_id] = {"issue": issue, "body": body}
        return comment_id

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.requests if m != "GET"]

    def deployment_calls(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.requests if "/deployments" in p]

    def states(self, deployment_id: int) -> list[str]:
        return [s["state"] for s in self.deployment_statuses if s["deployment"] == deployment_id]


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    prefix = f"/api/v1/repos/{REPO}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            parts = urlsplit(self.path)
            forge.requests.append((self.command, parts.path, dict(self.headers.items()), body))
            if forge.drip and self.command == "GET":
                return self._drip()
            if forge.fail:
                return self._answer(500, {"message": "boom"})
            if forge.answers:
                status, headers = forge.answers.pop(0)
                return self._answer(status, {"message": "forced"}, headers)
            path = parts.path.removeprefix(prefix)
            segments = path.strip("/").split("/")
            if self.command == "GET" and segments[0] == "pulls" and int(segments[1]) in forge.pulls:
                return self._answer(200, {"number": int(segments[1]), "state": forge.pulls[int(segments[1])]})
            if self.command == "GET" and segments[0] == "issues" and segments[2:] == ["comments"]:
                barrier = forge.list_barrier
                if barrier is not None and barrier.wait(timeout=5) == 0:
                    forge.list_barrier = None  # only the overlapping first lookups wait
                query = parse_qs(parts.query)
                size = min(int(query.get("limit", ["30"])[0]), forge.max_page)
                page = int(query.get("page", ["1"])[0])
                mine = [{"id": i, "body": c["body"]} for i, c in sorted(forge.comments.items())]
                mine = [c for c in mine if forge.comments[c["id"]]["issue"] == int(segments[1])]
                return self._answer(200, mine[(page - 1) * size : page * size])
            if self.command == "POST" and segments[0] == "issues" and segments[2:] == ["comments"]:
                comment_id = forge.add(int(segments[1]), json.loads(body)["body"])
                return self._answer(201, {"id": comment_id, "body": json.loads(body)["body"]})
            if self.command == "PATCH" and segments[:2] == ["issues", "comments"]:
                comment = forge.comments.get(int(segments[2]))
                if comment is None:
                    return self._answer(404, {"message": "not found"})
                comment["body"] = json.loads(body)["body"]
                return self._answer(200, {"id": int(segments[2]), "body": comment["body"]})
            if self.command == "DELETE" and segments[:2] == ["issues", "comments"]:
                if forge.comments.pop(int(segments[2]), None) is None:
                    return self._answer(404, {"message": "not found"})
                self.send_response(204)
                self.end_headers()
                return None
            if segments[0] == "deployments":
                return self._deployments(segments, parse_qs(parts.query), body)
            if self.command == "POST" and segments[0] == "statuses":
                if forge.statuses_forbidden:
                    return self._answer(403, {"message": "token does not have at least one of required scope(s)"})
                forge.statuses.append({"sha": segments[1], **json.loads(body)})
                return self._answer(201, {})
            return self._answer(404, {"message": "not found"})

        def _deployments(self, segments: list[str], query: dict[str, list[str]], body: str) -> None:
            """GitHub's deployments: create, list by environment (newest first), add a status."""
            if forge.deployments_forbidden:
                return self._answer(403, {"message": "Resource not accessible by integration"})
            if self.command == "GET" and segments == ["deployments"]:
                wanted = query.get("environment", [""])[0]
                found = [{"id": i, **d} for i, d in sorted(forge.deployments.items(), reverse=True)]
                return self._answer(200, [d for d in found if d["environment"] == wanted])
            if self.command == "POST" and segments == ["deployments"]:
                deployment_id, forge.next_id = forge.next_id, forge.next_id + 1
                forge.deployments[deployment_id] = json.loads(body)
                return self._answer(201, {"id": deployment_id, **forge.deployments[deployment_id]})
            if self.command == "POST" and segments[2:] == ["statuses"] and int(segments[1]) in forge.deployments:
                forge.deployment_statuses.append({"deployment": int(segments[1]), **json.loads(body)})
                return self._answer(201, {"id": len(forge.deployment_statuses)})
            return self._answer(404, {"message": "not found"})

        def _drip(self) -> None:
            """A forge that never finishes its answer: one byte of headers or body every 50 ms."""
            self.close_connection = True
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
            start, filler = (b"HTTP/1.1 200 OK\r\n", b"X") if forge.drip == "headers" else (head, b" ")
            try:
                self.wfile.write(start)
                while not forge.stop.wait(0.05):
                    self.wfile.write(filler)
                    self.wfile.flush()
            except OSError:
                pass  # the client hung up: what a watchdog does

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def serve_forge() -> Iterator[FakeForge]:
    """A running FakeForge on 127.0.0.1; its `url` is the API base (like Gitea's `/api/v1`)."""
    state = FakeForge()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with serve_forge() as state:
        yield state


def test_list_follows_pages_until_a_short_one(forge: FakeForge) -> None:
    for n in range(PAGE_SIZE + 13):
        forge.add(7, f"comment {n}")
    forge.add(8, "another PR")
    client = ForgeClient(forge.url, REPO, "tok")
    comments = client.list_comments(7)
    assert [c.body for c in comments] == [f"comment {n}" for n in range(PAGE_SIZE + 13)]
    gets = [r for r in forge.requests if r[0] == "GET"]
    assert len(gets) == 2


def test_create_edit_status_and_headers(forge: FakeForge) -> None:
    client = ForgeClient(forge.url, REPO, "s3cret")
    comment_id = client.create_comment(3, "hello")
    client.edit_comment(comment_id, "edited")
    client.create_status("abc123", "success", "sgp-agentex/a", "ok", "http://run")
    assert forge.comments[comment_id]["body"] == "edited"
    assert forge.statuses == [
        {
            "sha": "abc123",
            "state": "success",
            "context": "sgp-agentex/a",
            "description": "ok",
            "target_url": "http://run",
        }
    ]
    for _, _, headers, _ in forge.requests:
        assert headers["Authorization"] == "token s3cret"
        assert headers["Accept"] == "application/vnd.github+json"


@pytest.mark.parametrize("fail", ["http500", "unreachable"])
def test_failures_are_forge_errors_without_the_token(forge: FakeForge, fail: str) -> None:
    forge.fail = True
    url = forge.url if fail == "http500" else "http://127.0.0.1:9/api/v1"
    client = ForgeClient(url, REPO, "s3cret", sleep=lambda seconds: None)
    with pytest.raises(ForgeError) as info:
        client.list_comments(1)
    assert "s3cret" not in str(info.value)


def _client(forge: FakeForge, sleeps: list[float]) -> ForgeClient:
    return ForgeClient(forge.url, REPO, "tok", sleep=sleeps.append)


def test_reads_are_retried_on_429_and_5xx_honouring_retry_after(forge: FakeForge) -> None:
    forge.pulls[4] = "closed"
    forge.answers = [(429, {"Retry-After": "2"}), (503, {"Retry-After": "999"})]
    sleeps: list[float] = []
    assert _client(forge, sleeps).pull_state(4) == "closed"
    assert sleeps == [2.0, 10.0]  # the second Retry-After is capped
    assert len(forge.requests) == 3


def test_reads_give_up_after_three_attempts(forge: FakeForge) -> None:
    forge.answers = [(502, {})] * 3
    sleeps: list[float] = []
    with pytest.raises(ForgeError, match="HTTP 502"):
        _client(forge, sleeps).list_comments(1)
    assert len(sleeps) == 2 and all(0.5 <= s <= 4.0 for s in sleeps)
    assert len(forge.requests) == 3


@pytest.mark.parametrize(("status", "sent"), [(429, 2), (503, 2), (502, 1), (500, 1)])
def test_a_comment_is_sent_again_only_when_the_forge_surely_did_not_take_it(
    forge: FakeForge, status: int, sent: int
) -> None:
    forge.answers = [(status, {"Retry-After": "0"})]
    sleeps: list[float] = []
    client = _client(forge, sleeps)
    if sent == 2:
        client.create_comment(5, "hello")
        assert [c["body"] for c in forge.comments.values()] == ["hello"]
    else:
        with pytest.raises(ForgeError, match=f"HTTP {status}"):
            client.create_comment(5, "hello")
        assert forge.comments == {}
    assert len(forge.writes()) == sent


def test_a_comment_is_sent_again_when_the_connection_never_opened() -> None:
    sleeps: list[float] = []
    client = ForgeClient("http://127.0.0.1:9/api/v1", REPO, "tok", sleep=sleeps.append)
    with pytest.raises(ForgeError, match="ConnectionError"):
        client.create_comment(5, "hello")
    assert len(sleeps) == 2  # refused every time: three attempts


def test_pull_state_of_an_unknown_pr_is_none(forge: FakeForge) -> None:
    forge.pulls[1] = "OPEN"
    client = _client(forge, [])
    assert client.pull_state(1) == "open"
    assert client.pull_state(2) is None


def test_a_body_dripped_a_byte_at_a_time_ends_by_the_budget(forge: FakeForge) -> None:
    forge.drip = "body"
    client = ForgeClient(forge.url, REPO, "tok", budget=0.5)
    start = time.monotonic()
    errors: list[str] = []

    def read() -> None:
        try:
            client.list_comments(7)
        except ForgeError as exc:
            errors.append(str(exc))

    finished = call_with_deadline(read, 5.0).done
    elapsed = time.monotonic() - start
    assert finished and elapsed < 1.5, elapsed
    assert errors == [
        "GET /issues/7/comments: the forge sent its answer too slowly (not done in 0.5 s)"
    ]  # the watchdog shut the socket; no retry once the budget is spent
    assert len(forge.requests) == 1


def test_no_request_is_sent_once_the_budget_is_spent_or_the_client_abandoned(forge: FakeForge) -> None:
    now = [0.0]
    client = ForgeClient(forge.url, REPO, "tok", budget=10.0, clock=lambda: now[0])
    client.edit_comment(forge.add(7, "a"), "b")
    now[0] = 10.0
    with pytest.raises(ForgeError, match="within the forge budget of 10 s"):
        client.create_comment(7, "late")
    fresh = ForgeClient(forge.url, REPO, "tok")
    fresh.abandon()
    with pytest.raises(ForgeError, match="given up"):
        fresh.create_comment(7, "late")
    assert [m for m, _ in forge.writes()] == ["PATCH"] and fresh.abandoned


def test_a_retry_that_would_outlast_the_budget_is_not_waited_for(forge: FakeForge) -> None:
    forge.answers = [(503, {"Retry-After": "8"})]
    sleeps: list[float] = []
    client = ForgeClient(forge.url, REPO, "tok", sleep=sleeps.append, budget=5.0)
    with pytest.raises(ForgeError, match="no time is left"):
        client.list_comments(7)
    assert sleeps == [] and len(forge.requests) == 1


def test_delete_comment_and_one_already_gone(forge: FakeForge) -> None:
    client = ForgeClient(forge.url, REPO, "tok")
    comment_id = forge.add(7, "x")
    client.delete_comment(comment_id)
    client.delete_comment(comment_id)  # 404: someone else deleted it first
    assert forge.comments == {} and [m for m, _ in forge.writes()] == ["DELETE", "DELETE"]
