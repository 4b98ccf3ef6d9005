"""An in-memory stand-in for `SGPClient`, for the phase tests that need exact control over timing and failures.

Full runs are tested against the real emulator (tests/test_pipeline.py); this fake only scripts what the emulator
cannot be made to do on cue (a status sequence, a stream that breaks mid-line, a server that refuses agent ids).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sgp_action.api.client import SGPClient
from sgp_action.api.models import Build, DeployEvent, Deployment, LogLine, LogPage, deploy_status_word
from sgp_action.errors import NotFoundError, ValidationError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def build(status: str = "queued", **kw: Any) -> Build:
    values: dict[str, Any] = dict(
        id="b-1",
        status=status.lower(),
        agent_name="echo-bot",
        agent_id="agent-1",
        image_name="echo-bot",
        image_tag="abc1234",
        working_tree_hash="h" * 64,
    )
    values.update(kw)
    return Build(**values)


def deployment(status: str = "pending", **kw: Any) -> Deployment:
    values: dict[str, Any] = dict(
        id="d-1",
        status=deploy_status_word(status) or status.lower(),
        server_status=status.lower(),
        build_id="b-1",
        preview_label="pr-7",
        expires_at=T0 + timedelta(hours=8),
        created_at=T0,
    )
    values.update(kw)
    return Deployment(**values)


class FakeStream:
    """A LogStream: iterates lines, `close()` (thread-safe) ends the iteration; `error` breaks it after the lines.

    A line given as `(id, text)` carries an SSE event id.
    """

    def __init__(self, lines: list[Any], *, error: Exception | None = None, hold: threading.Event | None = None):
        self.lines = lines
        self.error = error
        self.hold = hold
        self.closed = threading.Event()

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed.set()

    def __iter__(self) -> Iterator[str]:
        for _event_id, line in self.entries():
            yield line

    def entries(self) -> Iterator[tuple[str, str]]:
        for line in self.lines:
            if self.closed.is_set():
                return
            yield line if isinstance(line, tuple) else ("", line)
        if self.hold is not None:  # a stream that stays open until closed or released
            while not self.closed.is_set() and not self.hold.wait(0.01):
                pass
        if self.error is not None:
            raise self.error


class FakeClient:
    """Scripted builds and deployments; records every call in `calls`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.listed_builds: list[Build] = []
        self.build_statuses: list[str] = ["running", "success"]
        self.streams: list[FakeStream] = []
        self.opened: list[FakeStream] = []
        self.last_event_ids: list[str] = []
        self.refuse_agent_id = False
        self.create_errors: list[Exception] = []
        self.listed_builds_after_create: list[Build] | None = None
        self.deploy_statuses: list[str] = ["in_progress", "healthy"]
        self.deploy_events: list[list[DeployEvent]] = []
        self.log_pages: list[LogPage] = []
        self.deployments: list[Deployment] = []
        self.delete_errors: dict[str, Exception] = {}
        self.created_build = build("queued")
        self._lock = threading.Lock()

    def _record(self, name: str, value: Any = None) -> None:
        with self._lock:
            self.calls.append((name, value))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    # builds
    def list_builds(self, **filters: Any) -> Iterator[Build]:
        self._record("list_builds", filters)
        if "create_build" in self.names() and self.listed_builds_after_create is not None:
            return iter(self.listed_builds_after_create)
        return iter(self.listed_builds)

    def create_build(self, **fields: Any) -> Build:
        self._record("create_build", fields)
        if self.create_errors:
            raise self.create_errors.pop(0)
        if fields.get("agent_id") and self.refuse_agent_id:
            raise ValidationError("agent_id is not a valid field", status_code=422)
        progress = fields.get("progress")
        if progress is not None:
            for sent in range(0, 101, 5):
                progress(sent * 1000, 100_000)
        return self.created_build

    def get_build(self, build_id: str) -> Build:
        self._record("get_build", build_id)
        status = self.build_statuses.pop(0) if len(self.build_statuses) > 1 else self.build_statuses[0]
        return build(status, id=build_id, image_url=f"registry.example/echo-bot:{build_id}")

    def cancel_build(self, build_id: str) -> Build:
        self._record("cancel_build", build_id)
        return build("running", id=build_id)

    def open_build_logs(self, build_id: str, *, last_event_id: str = "") -> FakeStream:
        self._record("open_build_logs", build_id)
        self.last_event_ids.append(last_event_id)
        if not self.streams:
            stream = FakeStream([])
        elif len(self.streams) > 1:
            stream = self.streams.pop(0)
        else:
            last = self.streams[0]
            stream = last if last not in self.opened else FakeStream(list(last.lines), error=last.error)
        self.opened.append(stream)
        return stream

    # deployments
    def create_deployment(self, **fields: Any) -> Deployment:
        self._record("create_deployment", fields)
        if self.create_errors:
            raise self.create_errors.pop(0)
        return deployment("pending", preview_label=fields.get("preview_label"))

    def get_deployment(self, deployment_id: str) -> Deployment:
        self._record("get_deployment", deployment_id)
        status = self.deploy_statuses.pop(0) if len(self.deploy_statuses) > 1 else self.deploy_statuses[0]
        events = self.deploy_events.pop(0) if self.deploy_events else []
        return deployment(
            status,
            id=deployment_id,
            events=tuple(events),
            helm_release_name="echo-bot-pr-7-ab12",
            namespace="team-echo",
        )

    def deployment_logs(self, deployment_id: str, *, cursor: str = "", limit: int = 100) -> LogPage:
        self._record("deployment_logs", cursor)
        if self.log_pages:
            return self.log_pages.pop(0)
        return LogPage(lines=(), next_cursor="", has_more=False)

    def list_deployments(self, **filters: Any) -> Iterator[Deployment]:
        self._record("list_deployments", filters)
        return iter(self.deployments)

    def delete_deployment(self, deployment_id: str) -> Deployment:
        self._record("delete_deployment", deployment_id)
        if deployment_id in self.delete_errors:
            raise self.delete_errors[deployment_id]
        return deployment("deleted", id=deployment_id)

    def close(self) -> None:
        self._record("close")


def log_line(i: int, message: str, level: str = "INFO") -> LogLine:
    return LogLine(id=f"{i:04d}", message=message, log_level=level)


__all__ = ["FakeClient", "FakeStream", "NotFoundError", "ValidationError", "build", "deployment", "log_line"]


class FakeConsole:
    """Records what the phases print, in order: ('info'|'server'|'warning'|'group'|'endgroup', text)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _add(self, kind: str, text: str) -> None:
        with self._lock:
            self.lines.append((kind, text))

    def info(self, text: str) -> None:
        self._add("info", text)

    def server_line(self, text: str) -> None:
        self._add("server", text)

    def warning(self, text: str, *, title: str | None = None, file: str | None = None) -> None:
        self._add("warning", text)

    def notice(self, text: str, *, title: str | None = None, file: str | None = None) -> None:
        self._add("notice", text)

    def group(self, title: str) -> Any:
        import contextlib

        @contextlib.contextmanager
        def scope() -> Iterator[None]:
            self._add("group", title)
            try:
                yield
            finally:
                self._add("endgroup", title)

        return scope()

    def of(self, kind: str) -> list[str]:
        with self._lock:
            return [text for k, text in self.lines if k == kind]


def phase_env(client: FakeClient | SGPClient, *, token: Any = None, clock: Any = None) -> Any:
    """A PhaseEnv over the fakes, polling fast."""
    from sgp_action.ci.report import Report
    from sgp_action.run.cancel import CancelToken, RemoteWork
    from sgp_action.run.phase import PhaseEnv

    env = PhaseEnv(
        client=client,  # the fake satisfies the ApiClient Protocol the phases are typed with
        console=FakeConsole(),
        token=token or CancelToken(),
        report=Report(),
        remote=RemoteWork(),
        poll_interval=0.01,
    )
    if clock is not None:
        env.clock = clock
    return env


def ticking_clock(step: float = 1.0) -> Any:
    """A clock that advances `step` seconds on each reading (drives timeouts without waiting)."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


# --- a tiny forge API: pull request states -----------------------------------------------------------------------
# Used in-process by tests/test_cleanup.py, and as a subprocess (`python tests/fakes.py forge ...`) by the act runs,
# which live in a loopback-only network namespace that an in-process thread could not serve.


@dataclass
class Forge:
    """`GET {url}/repos/{repo}/pulls/{n}` answers `{"number", "state"}` from `states` (404 when unknown)."""

    url: str
    states: dict[int, str]
    asked: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization header)


@contextlib.contextmanager
def serve_pr_states(repo: str, base: str = "/api/v1", states: dict[int, str] | None = None) -> Iterator[Forge]:
    """A running Forge on 127.0.0.1; `base` is the API prefix (Gitea's `/api/v1`, GitHub's empty one)."""
    forge = Forge("", dict(states or {}))
    prefix = f"{base}/repos/{repo}/pulls/"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            forge.asked.append((self.path, self.headers.get("Authorization", "")))
            number = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
            if not number.isdigit() or int(number) not in forge.states:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"number": int(number), "state": forge.states[int(number)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    forge.url = f"http://127.0.0.1:{server.server_address[1]}{base}"
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()


def _serve_forge_main(argv: list[str]) -> int:
    """`fakes.py forge --repo O/R [--base P] N=STATE...`: print `fake forge listening on URL`, then serve until
    SIGTERM and print every request seen, one JSON `[path, authorization]` per line."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="fakes.py forge")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--base", default="")
    parser.add_argument("states", nargs="*", metavar="N=STATE")
    args = parser.parse_args(argv)
    states = {int(n): state for n, _, state in (item.partition("=") for item in args.states)}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve_pr_states(args.repo, args.base, states) as forge:
        print(f"fake forge listening on {forge.url}", flush=True)
        while not stop.wait(0.05):
            pass
        for asked in forge.asked:
            print(json.dumps(asked), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["forge"]:
        raise SystemExit("usage: fakes.py forge --repo OWNER/REPO [--base PREFIX] N=STATE...")
    raise SystemExit(_serve_forge_main(sys.argv[2:]))
