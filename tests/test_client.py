"""SGPClient endpoints: multipart upload, paging, cursors, deletes, and opening the SSE log stream."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from requests_toolbelt.multipart.decoder import MultipartDecoder

from sgp_action.api import paging
from sgp_action.api.client import SGPClient
from sgp_action.api.models import Phase
from sgp_action.errors import (
    BadAnswerError,
    ContextError,
    InputError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from tests.hostile import cycling_pages, send_json, serve

BASE = "http://127.0.0.1:5003/public"


@pytest.fixture
def client(sleeps: list[float]) -> Iterator[SGPClient]:
    with SGPClient.for_url(BASE, "key", "acct", max_retries=2, sleep=sleeps.append) as c:
        yield c


def query(call_index: int) -> dict[str, list[str]]:
    url = responses.calls[call_index].request.url
    assert isinstance(url, str)
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def form(request: requests.PreparedRequest) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The multipart parts of a captured request: name -> (content, headers)."""
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    decoder = MultipartDecoder(body, request.headers["Content-Type"])
    parts = {}
    for part in decoder.parts:
        headers = {k.decode(): v.decode() for k, v in part.headers.items()}
        name = headers["Content-Disposition"].split('name="', 1)[1].split('"', 1)[0]
        parts[name] = (part.content, headers)
    return parts


# --- builds -------------------------------------------------------------------------------------------------------


@responses.activate
def test_create_build_multipart_fields(client: SGPClient, tmp_path: Path) -> None:
    archive = tmp_path / "ctx.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    responses.post(f"{BASE}/v5/builds", json={"id": "b1", "build_status": "queued"})
    progress: list[tuple[int, int]] = []
    build = client.create_build(
        image_name="hello",
        image_tag="abc1234",
        archive_path=archive,
        agent_id="agent-1",
        build_args={"A": "1", "B": "x y"},
        platform="linux/arm64",
        source={
            "source_commit": "abc1234def",
            "source_ref": "refs/heads/main",
            "source_repo": "github.com/o/r",
            "source_subpath": "agents/hello",
            "source_dirty": False,
        },
        working_tree_hash="f" * 64,
        progress=lambda sent, total: progress.append((sent, total)),
    )
    assert (build.id, build.status, build.phase) == ("b1", "queued", Phase.IN_PROGRESS)
    request = responses.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = form(request)
    texts = {name: content.decode() for name, (content, _) in parts.items() if name != "context_archive"}
    assert texts == {
        "image_name": "hello",
        "image_tag": "abc1234",
        "agent_id": "agent-1",
        "platform": "linux/arm64",
        "working_tree_hash": "f" * 64,
        "source_commit": "abc1234def",
        "source_ref": "refs/heads/main",
        "source_repo": "github.com/o/r",
        "source_subpath": "agents/hello",
        "source_dirty": "false",  # docs/sgp-api.md#booleans-in-multipart, not "False"
        "build_args": '{"A":"1","B":"x y"}',  # one JSON string (docs/sgp-api.md#build-args-are-one-json-string)
    }
    content, headers = parts["context_archive"]
    assert content == archive.read_bytes()
    assert 'filename="context.tar.gz"' in headers["Content-Disposition"]
    assert headers["Content-Type"] == "application/gzip"
    total = int(request.headers["Content-Length"])
    assert progress and progress[-1] == (total, total)
    assert [sent for sent, _ in progress] == sorted(sent for sent, _ in progress)
    assert {t for _, t in progress} == {total}


@pytest.mark.parametrize(("dirty", "word"), [(True, "true"), (False, "false")])
@responses.activate
def test_create_build_from_image_url(client: SGPClient, dirty: bool, word: str) -> None:
    responses.post(f"{BASE}/v5/builds", json={"build_id": "b2", "status": "SUCCESS"})
    build = client.create_build(
        image_name="hello", image_url="registry/hello:1", agent_name="hello", source={"source_dirty": dirty}
    )
    assert build.phase is Phase.SUCCEEDED
    texts = {k: v.decode() for k, (v, _) in form(responses.calls[0].request).items()}
    assert texts == {
        "image_name": "hello",
        "image_url": "registry/hello:1",
        "agent_name": "hello",
        "source_dirty": word,
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"agent_name": "a"}, InputError, "exactly one of archive_path and image_url"),
        ({"agent_name": "a", "image_url": "u", "archive_path": "x"}, InputError, "exactly one of archive_path"),
        ({"image_url": "u"}, InputError, "exactly one of agent_name and agent_id"),
        ({"image_url": "u", "agent_name": "a", "agent_id": "i"}, InputError, "exactly one of agent_name and agent_id"),
        ({"image_url": "u", "agent_name": "a", "source": {"commit": "x"}}, InputError, "unknown source fields"),
        ({"image_name": "", "image_url": "u", "agent_name": "a"}, InputError, "needs an image_name"),
        ({"archive_path": "missing.tar.gz", "agent_name": "a"}, ContextError, "cannot read the build context archive"),
        ({"archive_path": "empty.tar.gz", "agent_name": "a"}, ContextError, "is empty"),
    ],
)
@responses.activate
def test_create_build_refuses_bad_arguments(
    client: SGPClient, tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    if "archive_path" in kwargs:
        kwargs["archive_path"] = tmp_path / kwargs["archive_path"]
    with pytest.raises(error, match=words):
        client.create_build(**{"image_name": "img", **kwargs})
    assert len(responses.calls) == 0


@responses.activate
def test_create_build_is_not_retried_on_500(client: SGPClient, sleeps: list[float], tmp_path: Path) -> None:
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(b"x" * 100)
    responses.post(f"{BASE}/v5/builds", status=500, json={"detail": "boom"})
    with pytest.raises(ServerError, match="boom"):
        client.create_build(image_name="i", archive_path=archive, agent_name="a")
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_create_build_resends_the_whole_file_after_429(client: SGPClient, tmp_path: Path) -> None:
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(b"0123456789" * 1000)
    responses.post(f"{BASE}/v5/builds", status=429, headers={"Retry-After": "0"})
    responses.post(f"{BASE}/v5/builds", json={"id": "b1", "build_status": "queued"})
    client.create_build(image_name="i", archive_path=archive, agent_name="a")
    assert [form(call.request)["context_archive"][0] for call in responses.calls] == [archive.read_bytes()] * 2


class _UploadSink(BaseHTTPRequestHandler):
    """Reads a request body in small pieces and throws it away, like a server streaming the upload to disk."""

    received: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        left, got = int(self.headers["Content-Length"]), 0
        while left:
            piece = self.rfile.read(min(left, 65536))
            left -= len(piece)
            got += len(piece)
        type(self).received.append(got)
        body = json.dumps({"id": "b-big", "build_status": "queued"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_upload_is_streamed_from_the_file(tmp_path: Path, local_server: Callable[..., str]) -> None:
    """A 50 MB (sparse) archive goes out while the client's Python memory peak stays a small fraction of it."""
    size = 50 * 1024 * 1024
    archive = tmp_path / "big.tar.gz"
    with archive.open("wb") as handle:
        handle.truncate(size)
    _UploadSink.received = []
    url = local_server(_UploadSink)
    calls: list[tuple[int, int]] = []
    with SGPClient.for_url(url, "key", "acct") as client:
        tracemalloc.start()
        try:
            build = client.create_build(
                image_name="big", archive_path=archive, agent_name="a", progress=lambda s, t: calls.append((s, t))
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert build.id == "b-big"
    assert _UploadSink.received and _UploadSink.received[0] > size
    assert calls[-1][0] == calls[-1][1] == _UploadSink.received[0]
    assert peak < size // 10, f"peak {peak} bytes for a {size}-byte upload"


@responses.activate
def test_get_and_cancel_build(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds/b%201", json={"id": "b 1", "build_status": "running"})
    responses.post(f"{BASE}/v5/builds/b1/cancel", status=202, json={"id": "b1", "build_status": "running"})
    assert client.get_build("b 1").status == "running"
    # the state before the cancel (docs/sgp-api.md#build-cancel-answers-202)
    assert client.cancel_build("b1").status == "running"


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_ids_that_would_change_the_path_are_refused(client: SGPClient, bad: str) -> None:
    with pytest.raises(InputError):
        client.get_build(bad)


@responses.activate
def test_cancel_is_retried_like_a_read(client: SGPClient, sleeps: list[float]) -> None:
    responses.post(f"{BASE}/v5/builds/b1/cancel", status=503)
    responses.post(f"{BASE}/v5/builds/b1/cancel", status=202, json={"id": "b1", "build_status": "cancelling"})
    assert client.cancel_build("b1").status == "cancelling"
    assert len(sleeps) == 1


@responses.activate
def test_list_builds_pages_to_the_end(client: SGPClient) -> None:
    pages = [
        {"items": [{"id": "b1", "build_status": "success"}, {"id": "b2"}], "has_more": True, "object": "list"},
        {"items": [{"build_id": "b3", "status": "failed"}, {"id": "b4"}], "has_more": True},
        {"items": [{"id": "b5"}], "has_more": False},
    ]
    for page in pages:
        responses.get(f"{BASE}/v5/builds", json=page)
    builds = list(client.list_builds(agent_name="hello", limit=2, sort_by="created_at", sort_order="desc"))
    assert [b.id for b in builds] == ["b1", "b2", "b3", "b4", "b5"]
    assert len(responses.calls) == 3
    common = {"agent_name": ["hello"], "limit": ["2"], "sort_by": ["created_at"], "sort_order": ["desc"]}
    assert query(0) == common
    assert query(1) == {**common, "starting_after": ["b2"]}
    assert query(2) == {**common, "starting_after": ["b4"]}


@pytest.mark.parametrize(
    "pages",
    [
        [{"items": [{"id": "b1"}], "has_more": True}, {"items": [], "has_more": True}],  # empty page ends it
        [{"items": [{"id": "b1"}]}],  # has_more missing
        [[{"id": "b1"}]],  # a bare array
    ],
)
@responses.activate
def test_list_builds_stops(client: SGPClient, pages: list[Any]) -> None:
    for page in pages:
        responses.get(f"{BASE}/v5/builds", json=page)
    assert [b.id for b in client.list_builds()] == ["b1"]
    assert len(responses.calls) == len(pages)


@responses.activate
def test_list_is_lazy(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b1"}], "has_more": True})
    builds = client.list_builds(working_tree_hash="h", source_commit="c")
    assert len(responses.calls) == 0
    assert next(builds).id == "b1"
    assert query(0) == {"working_tree_hash": ["h"], "source_commit": ["c"], "limit": ["100"]}


@responses.activate
def test_list_refuses_a_page_without_progress(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b1"}], "has_more": True})
    with pytest.raises(BadAnswerError, match="paging looped"):
        list(client.list_builds())


# --- deployments --------------------------------------------------------------------------------------------------


@responses.activate
def test_create_preview_deployment_body(client: SGPClient) -> None:
    responses.post(f"{BASE}/v5/agentex/deployments", json={"id": "d1", "status": "PENDING", "preview_label": "pr-7"})
    expires = datetime(2026, 1, 2, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    deployment = client.create_deployment(
        manifest_file="agent:\n  name: hello\n",
        environment_config="schema_version: v1\n",
        build_id="b1",
        preview=True,
        preview_label="pr-7",
        expires_at=expires,
    )
    assert (deployment.id, deployment.status, deployment.is_preview) == ("d1", "pending", True)
    assert json.loads(responses.calls[0].request.body or b"") == {
        "manifest_file": "agent:\n  name: hello\n",
        "environment_config": "schema_version: v1\n",
        "build_id": "b1",
        "preview": True,
        "preview_label": "pr-7",
        "expires_at": "2026-01-02T11:00:00Z",
    }
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"


@responses.activate
def test_create_production_deployment_body(client: SGPClient, sleeps: list[float]) -> None:
    responses.post(f"{BASE}/v5/agentex/deployments", status=502)
    with pytest.raises(ServerError):
        client.create_deployment(manifest_file="m", environment_config="e", image_name="img", image_tag="t")
    assert json.loads(responses.calls[0].request.body or b"") == {
        "manifest_file": "m",
        "environment_config": "e",
        "image_name": "img",
        "image_tag": "t",
    }
    assert len(responses.calls) == 1 and sleeps == []  # a create is never retried on 5xx


def test_create_deployment_needs_a_build_or_an_image(client: SGPClient) -> None:
    with pytest.raises(InputError):
        client.create_deployment(manifest_file="m", environment_config="e")


@responses.activate
def test_expires_at_string_is_sent_as_is(client: SGPClient) -> None:
    responses.post(f"{BASE}/v5/agentex/deployments", json={"id": "d1", "status": "pending"})
    client.create_deployment(manifest_file="m", environment_config="e", build_id="b", expires_at="2030-01-01T00:00:00Z")
    assert json.loads(responses.calls[0].request.body or b"")["expires_at"] == "2030-01-01T00:00:00Z"


@responses.activate
def test_get_list_and_delete_deployments(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/agentex/deployments/d1", json={"id": "d1", "status": "HEALTHY"})
    responses.get(f"{BASE}/v5/agentex/deployments", json={"items": [{"id": "d1", "status": "x"}], "has_more": True})
    responses.get(f"{BASE}/v5/agentex/deployments", json={"items": [{"id": "d2", "status": "y"}], "has_more": False})
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", json={"id": "d1", "status": "DELETED"})
    assert client.get_deployment("d1").phase is Phase.SUCCEEDED
    found = list(client.list_deployments(preview_label="pr-7", build_id="b1", agent_name="a", limit=1))
    assert [d.id for d in found] == ["d1", "d2"]
    assert query(2) == {
        "preview_label": ["pr-7"],
        "build_id": ["b1"],
        "agent_name": ["a"],
        "limit": ["1"],
        "starting_after": ["d1"],
    }
    assert client.delete_deployment("d1").status == "deleted"


@responses.activate
def test_delete_of_a_deleted_deployment_is_a_validation_error(client: SGPClient) -> None:
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", status=400, json={"detail": "already DELETED"})
    with pytest.raises(ValidationError, match="already DELETED"):
        client.delete_deployment("d1")
    assert len(responses.calls) == 1


@responses.activate
def test_retried_delete_that_meets_already_deleted_returns_the_record(client: SGPClient) -> None:
    """The first DELETE worked but its answer was lost; the retry's 400 must not fail a teardown."""
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", body=requests.exceptions.ConnectionError("reset"))
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", status=400, json={"detail": "already DELETED"})
    responses.get(f"{BASE}/v5/agentex/deployments/d1", json={"id": "d1", "status": "DELETED"})
    assert client.delete_deployment("d1").status == "deleted"


@responses.activate
def test_retried_delete_with_a_real_refusal_still_raises(client: SGPClient) -> None:
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", status=503)
    responses.delete(f"{BASE}/v5/agentex/deployments/d1", status=400, json={"detail": "is SUPERSEDED"})
    responses.get(f"{BASE}/v5/agentex/deployments/d1", json={"id": "d1", "status": "SUPERSEDED"})
    with pytest.raises(ValidationError, match="SUPERSEDED"):
        client.delete_deployment("d1")


@responses.activate
def test_deployment_logs_cursor(client: SGPClient) -> None:
    url = f"{BASE}/v5/agentex/deployments/d1/logs"
    responses.get(url, json={"lines": [{"id": "1", "message": "a"}], "next_cursor": "1", "has_more": True})
    responses.get(url, json={"lines": [], "next_cursor": "", "has_more": False})
    responses.get(url, json={"lines": [{"id": "2", "message": "b"}], "next_cursor": "2", "has_more": False})
    first = client.deployment_logs("d1", limit=1)
    second = client.deployment_logs("d1", cursor=first.next_cursor, limit=1000)
    third = client.deployment_logs("d1", cursor=second.next_cursor, limit=0)
    assert [line.message for page in (first, second, third) for line in page.lines] == ["a", "b"]
    # "" keeps the cursor (docs/sgp-api.md#deployment-log-cursor)
    assert (first.next_cursor, second.next_cursor, third.next_cursor) == ("1", "1", "2")
    assert query(0) == {"limit": ["1"]}
    assert query(1) == {"cursor": ["1"], "limit": ["500"]}
    assert query(2) == {"cursor": ["1"], "limit": ["1"]}


# --- build logs (SSE) ---------------------------------------------------------------------------------------------


@responses.activate
def test_build_logs_over_sse(client: SGPClient) -> None:
    stream = (
        b': hello\r\n\r\ndata: {"line": "Step 1/2 : FROM python"}\r\n\r\nevent: progress\ndata: {"line": "no"}\n\n'
        b'data: {"line": "Successfully built"}\n\ndata: {"line": "cut off"}'
    )
    responses.get(f"{BASE}/v5/builds/b1/logs", body=stream, content_type="text/event-stream")
    with client.open_build_logs("b1") as logs:
        lines = list(logs)
    assert lines == ["Step 1/2 : FROM python", "Successfully built"]
    assert responses.calls[0].request.headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in responses.calls[0].request.headers
    assert logs.last_event_id == ""


@responses.activate
def test_build_logs_reconnect_sends_the_last_event_id(client: SGPClient) -> None:
    url = f"{BASE}/v5/builds/b1/logs"
    responses.get(url, body=b'id: 7\ndata: {"line": "a"}\n\ndata: {"line": "b"}\n\n', content_type="text/event-stream")
    responses.get(url, body=b'data: {"line": "c"}\n\n', content_type="text/event-stream")
    with client.open_build_logs("b1") as first:
        assert list(first) == ["a", "b"]
    assert first.last_event_id == "7"  # carried over to the event without an id
    with client.open_build_logs("b1", last_event_id=first.last_event_id) as second:
        assert list(second) == ["c"]
    assert responses.calls[1].request.headers["Last-Event-ID"] == "7"


@responses.activate
def test_build_logs_open_retries_and_maps_errors(client: SGPClient, sleeps: list[float]) -> None:
    responses.get(f"{BASE}/v5/builds/b1/logs", status=503)
    responses.get(f"{BASE}/v5/builds/b1/logs", body=b'data: {"line": "x"}\n\n', content_type="text/event-stream")
    responses.get(f"{BASE}/v5/builds/nope/logs", status=404, json={"detail": "Build not found"})
    assert list(client.open_build_logs("b1")) == ["x"]
    assert len(sleeps) == 1
    with pytest.raises(NotFoundError, match="Build not found"):
        client.open_build_logs("nope")


def _endless_fresh_pages(handler: BaseHTTPRequestHandler) -> None:
    """Every page holds one new id and says there is more."""
    send_json(handler, {"items": [{"id": f"b-{uuid.uuid4().hex}"}], "has_more": True})


def test_paging_stops_at_the_page_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 7)
    pattern = r"GET /v5/builds: .*paging looped or exceeded.*after 7 pages"
    with (
        serve(_endless_fresh_pages) as server,
        SGPClient.for_url(server.url, "key", "acct") as client,
        pytest.raises(BadAnswerError, match=pattern),
    ):
        list(client.list_builds())
    assert len(server.requests) == 7


def test_paging_stops_on_an_item_seen_before() -> None:
    """A -> B -> A: the item A on the third page ends the walk, with exit code 3."""
    with (
        serve(cycling_pages) as server,
        SGPClient.for_url(server.url, "key", "acct") as client,
        pytest.raises(BadAnswerError, match="it sent the item 'A' twice") as caught,
    ):
        list(client.list_deployments())
    assert caught.value.exit_code == 3
    assert len(server.requests) == 3


def test_malformed_deployment_logs_name_the_endpoint_and_exit_3() -> None:
    with (
        serve(lambda handler: send_json(handler, {"lines": 5, "next_cursor": "c1"})) as server,
        SGPClient.for_url(server.url, "key", "acct") as client,
        pytest.raises(BadAnswerError) as caught,
    ):
        client.deployment_logs("d-1")
    assert str(caught.value).startswith(
        "GET /v5/agentex/deployments/d-1/logs: the server sent a deployment logs answer this action cannot read: "
        "'lines' is a number ('5'), not an array"
    )
    assert caught.value.exit_code == 3


# --- server variants (docs/sgp-api.md#assumptions-where-the-platforms-documents-are-silent)


def _register_builds(emulator: Any, count: int) -> list[str]:
    ids = []
    for index in range(count):
        form = {"image_name": "echo", "agent_name": f"agent-{index}", "image_url": f"registry.example/echo:{index}"}
        answer = requests.post(
            f"{emulator.url}/v5/builds", headers=emulator.headers, files={k: (None, v) for k, v in form.items()}
        )
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_a_refused_sort_is_asked_again_without_it_and_ordered_here_for_the_rest_of_the_run(
    emulator_factory: Callable[..., Any],
) -> None:
    emulator = emulator_factory(variants=["no-sort"])
    made = _register_builds(emulator, 5)
    with SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id, max_retries=0) as sgp:
        newest_first = [b.id for b in sgp.list_builds(limit=2, sort_by="created_at", sort_order="desc")]
        oldest_first = [b.id for b in sgp.list_builds(limit=2, sort_by="created_at", sort_order="asc")]
        assert sgp.sort_refused
    assert newest_first == made[::-1] and oldest_first == made
    lists = [r for r in emulator.state()["requests"] if r["path"] == "/v5/builds" and r["method"] == "GET"]
    assert lists[0]["status"] == 422 and "sort_by" in lists[0]["query"]
    # asked again once without the sort, then never sent again in this run
    assert all(r["status"] == 200 and "sort_by" not in r["query"] for r in lists[1:])
    assert len(lists) == 3


@responses.activate
def test_a_refusal_that_names_no_sort_parameter_is_raised(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds", status=422, json={"detail": [{"loc": ["query", "limit"], "msg": "too big"}]})
    with pytest.raises(ValidationError, match="limit"):
        list(client.list_builds(sort_by="created_at", sort_order="desc"))
    assert not client.sort_refused and len(responses.calls) == 1


@pytest.mark.parametrize("flag", [{}, {"has_more": None}])
@responses.activate
def test_paging_without_has_more_goes_on_while_pages_are_full(client: SGPClient, flag: dict[str, Any]) -> None:
    pages = [
        {"items": [{"id": "b1"}, {"id": "b2"}], "next_cursor": "b2", **flag},
        {"items": [{"id": "b3"}, {"id": "b4"}], "next_cursor": "b4", **flag},
        {"items": [{"id": "b5"}], "next_cursor": "b5", **flag},  # short: the end, whatever the cursor says
    ]
    for page in pages:
        responses.get(f"{BASE}/v5/builds", json=page)
    assert [b.id for b in client.list_builds(limit=2)] == ["b1", "b2", "b3", "b4", "b5"]
    assert len(responses.calls) == 3 and query(2)["starting_after"] == ["b4"]


@responses.activate
def test_paging_without_has_more_reads_the_servers_own_smaller_limit(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b1"}, {"id": "b2"}], "limit": 2})
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b3"}], "limit": 2})
    assert [b.id for b in client.list_builds(limit=100)] == ["b1", "b2", "b3"]


@responses.activate
def test_paging_without_has_more_still_stops_on_a_cursor_seen_before(client: SGPClient) -> None:
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b1"}, {"id": "b2"}], "next_cursor": "b2"})
    responses.get(f"{BASE}/v5/builds", json={"items": [{"id": "b3"}, {"id": "b2"}], "next_cursor": "b2"})
    with pytest.raises(BadAnswerError, match="paging looped"):
        list(client.list_builds(limit=2))


def test_paging_against_the_no_has_more_variant(emulator_factory: Callable[..., Any]) -> None:
    emulator = emulator_factory(variants=["no-has-more"])
    made = _register_builds(emulator, 5)
    with SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id, max_retries=0) as sgp:
        assert [b.id for b in sgp.list_builds(limit=2, sort_by="created_at", sort_order="asc")] == made
        assert len(list(sgp.list_deployments(limit=2))) == 0
