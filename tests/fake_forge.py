"""A tiny local forge API (issue comments with paging, commit statuses) that records every request."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.hostile import listening

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
    hang_state: str = ""  # a deployment status of this state is recorded, then left unanswered until `stop`
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
                status = json.loads(body)
                forge.deployment_statuses.append({"deployment": int(segments[1]), **status})
                if forge.hang_state and status.get("state") == forge.hang_state:
                    forge.stop.wait(30)  # taken, but its answer never comes
                    return None
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
    with listening(_handler(state)) as url:
        state.url = f"{url}/api/v1"
        try:
            yield state
        finally:
            state.stop.set()
