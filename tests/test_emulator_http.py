"""The emulator over raw HTTP: auth, the SSE stream, upload limits and framing, and `/_emulator/state`."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from sgp_action.emulator import EmulatorConfig, EmulatorServer

DOCKERFILE = "FROM alpine\nRUN echo one\nRUN echo two\nRUN echo three\n"


def post_build(emulator: Any, archive: Any, **fields: str) -> requests.Response:
    form = {"image_name": "echo", "agent_name": "echo-bot", **fields}
    with archive.open("rb") as handle:
        files = {"context_archive": ("context.tar.gz", handle, "application/gzip")}
        return requests.post(f"{emulator.url}/v5/builds", data=form, files=files, headers=emulator.headers, timeout=30)


def sse_lines(response: requests.Response) -> Iterator[str]:
    """Log lines of an SSE response, checking the exact framing of each event."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            assert frame.startswith(b"data: ") and b"\n" not in frame
            yield json.loads(frame[len(b"data: ") :])["line"]
    assert buffer == b""


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": "test-api-key"}, 401),
        ({"x-selected-account-id": "test-account"}, 401),
        ({"x-api-key": "", "x-selected-account-id": "test-account"}, 401),
        ({"x-api-key": "wrong", "x-selected-account-id": "test-account"}, 401),
        ({"x-api-key": "test-api-key", "x-selected-account-id": "other-account"}, 403),
        ({"x-api-key": "test-api-key", "x-selected-account-id": "test-account"}, 200),
    ],
)
def test_auth_with_configured_key_and_account(emulator: Any, headers: dict[str, str], status: int) -> None:
    response = requests.get(f"{emulator.url}/v5/builds", headers=headers, timeout=10)
    assert response.status_code == status
    if status != 200:
        assert response.json()["detail"]


@pytest.mark.parametrize("emulator", [{"api_key": None, "account_id": None}], indirect=True)
def test_without_configured_auth_any_values_pass_and_accounts_are_separate(emulator: Any) -> None:
    alice = {"x-api-key": "k1", "x-selected-account-id": "alice"}
    bob = {"x-api-key": "k2", "x-selected-account-id": "bob"}
    form = {"image_name": "echo", "agent_name": "echo-bot", "image_url": "r.example/echo:1"}
    made = requests.post(f"{emulator.url}/v5/builds", files={k: (None, v) for k, v in form.items()}, headers=alice)
    assert made.status_code == 200 and made.json()["account_id"] == "alice"
    assert requests.get(f"{emulator.url}/v5/builds/{made.json()['id']}", headers=alice).status_code == 200
    assert requests.get(f"{emulator.url}/v5/builds/{made.json()['id']}", headers=bob).status_code == 404
    assert requests.get(f"{emulator.url}/v5/builds", headers=bob).json()["items"] == []
    assert requests.get(f"{emulator.url}/v5/builds", headers={"x-api-key": "k1"}).status_code == 401


@pytest.mark.parametrize("emulator", [{"build_seconds": 3.0}], indirect=True)
def test_sse_sends_lines_while_the_build_runs(emulator: Any, make_context: Any) -> None:
    build = post_build(emulator, make_context({"Dockerfile": DOCKERFILE})).json()
    url = f"{emulator.url}/v5/builds/{build['id']}/logs"
    with requests.get(url, headers=emulator.headers, stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = sse_lines(response)
        first = next(lines)
        status = requests.get(f"{emulator.url}/v5/builds/{build['id']}", headers=emulator.headers).json()
        assert status["build_status"] in ("queued", "running")  # the line came before the build ended
        rest = list(lines)
    assert first.startswith("Received build context")
    final = requests.get(f"{emulator.url}/v5/builds/{build['id']}", headers=emulator.headers).json()
    assert final["build_status"] == "success"  # the stream closed when the build ended
    assert rest[-1].startswith("latest: digest: sha256:")
    with requests.get(url, headers=emulator.headers, stream=True, timeout=30) as again:
        assert list(sse_lines(again)) == [first, *rest]  # a reconnect replays from the first line


def test_sse_for_an_unknown_build_is_404(emulator: Any) -> None:
    response = requests.get(f"{emulator.url}/v5/builds/build_nope/logs", headers=emulator.headers, timeout=10)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"


def test_default_upload_limit_is_500_mb() -> None:
    assert EmulatorConfig().max_upload_bytes == 500 * 1024 * 1024


def raw_request(url: str, head: str) -> bytes:
    """Send request headers only (no body) and return what the server answers."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_an_upload_declared_over_500_mb_is_refused_before_reading(emulator: Any) -> None:
    head = (
        "POST /v5/builds HTTP/1.1\r\nHost: x\r\nx-api-key: test-api-key\r\nx-selected-account-id: test-account\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {600 * 1024 * 1024}\r\n\r\n"
    )
    answer = raw_request(emulator.url, head)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"over the 524288000 byte limit" in answer


@pytest.mark.parametrize("emulator", [{"max_upload_bytes": 64 * 1024}], indirect=True)
def test_an_archive_over_the_limit_is_413_and_not_kept(emulator: Any, make_context: Any) -> None:
    big = make_context(raw=os.urandom(200 * 1024))
    response = post_build(emulator, big)
    assert response.status_code == 413 and "65536 byte limit" in response.json()["detail"]
    assert emulator.state()["builds"] == [] and os.listdir(emulator.server.upload_dir) == []
    small = make_context(raw=os.urandom(60 * 1024))
    assert post_build(emulator, small).status_code == 200  # under the limit; fails later as not a tarball


@pytest.mark.parametrize("emulator", [{"max_upload_bytes": 64 * 1024}], indirect=True)
def test_chunked_uploads_are_parsed_and_limited(emulator: Any, make_context: Any) -> None:
    def body(archive: bytes) -> Iterator[bytes]:
        yield b'--XyZ\r\nContent-Disposition: form-data; name="image_name"\r\n\r\necho\r\n'
        yield b'--XyZ\r\nContent-Disposition: form-data; name="agent_name"\r\n\r\necho-bot\r\n'
        yield b'--XyZ\r\nContent-Disposition: form-data; name="context_archive"; filename="c.tgz"\r\n\r\n'
        for at in range(0, len(archive), 1000):
            yield archive[at : at + 1000]
        yield b"\r\n--XyZ--\r\n"

    headers = {**emulator.headers, "Content-Type": "multipart/form-data; boundary=XyZ"}
    archive = make_context({"Dockerfile": "FROM alpine\n"}).read_bytes()
    ok = requests.post(f"{emulator.url}/v5/builds", data=body(archive), headers=headers, timeout=30)
    assert ok.status_code == 200 and ok.json()["build_status"] == "queued"
    too_big = requests.post(f"{emulator.url}/v5/builds", data=body(os.urandom(100_000)), headers=headers, timeout=30)
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        ("application/json", b"{}", "expected a multipart/form-data body"),
        ("multipart/form-data", b"", "has no boundary"),
        ("multipart/form-data; boundary=q", b"no boundary here", "no opening boundary"),
        ("multipart/form-data; boundary=q", b'--q\r\nContent-Disposition: form-data; name="a"\r\n\r\nx', "ends inside"),
        ("multipart/form-data; boundary=q", b"--q\r\nX-Other: 1\r\n\r\nx\r\n--q--\r\n", "no Content-Disposition"),
    ],
)
def test_broken_multipart_is_400(emulator: Any, content_type: str, body: bytes, detail: str) -> None:
    with requests.Session() as session:
        headers = {**emulator.headers, "Content-Type": content_type}
        response = session.post(f"{emulator.url}/v5/builds", data=body, headers=headers, timeout=10)
        assert response.status_code == 400 and detail in response.json()["detail"]
        # The refused body was consumed, so the kept-alive connection still works.
        assert session.get(f"{emulator.url}/v5/builds", headers=emulator.headers, timeout=10).status_code == 200


def test_unknown_route_is_404_and_wrong_method_405(emulator: Any) -> None:
    assert requests.get(f"{emulator.url}/v5/nothing", headers=emulator.headers).status_code == 404
    wrong = requests.put(f"{emulator.url}/v5/builds", headers=emulator.headers)
    assert wrong.status_code == 405 and wrong.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_state_shows_records_in_the_dialect_and_requests(emulator: Any, deploy_yaml: Any) -> None:
    form = {"image_name": "echo", "agent_name": "echo-bot", "image_url": "r.example/echo:1"}
    files = {k: (None, v) for k, v in form.items()}
    build = requests.post(f"{emulator.url}/v5/builds", files=files, headers=emulator.headers).json()
    build_id = build.get("id") or build["build_id"]
    manifest, env = deploy_yaml()
    body = {"manifest_file": manifest, "environment_config": env, "build_id": build_id}
    requests.post(f"{emulator.url}/v5/agentex/deployments", json=body, headers=emulator.headers)
    requests.get(f"{emulator.url}/v5/builds/nope", headers=emulator.headers)
    state = requests.get(f"{emulator.url}/_emulator/state").json()  # no auth needed
    [shown] = state["builds"]
    if emulator.dialect == "legacy":
        assert shown["build_id"] == build_id and shown["status"] == "success" and "id" not in shown
        assert state["deployments"][0]["status"] in ("pending", "in_progress", "healthy")
    else:
        assert shown["id"] == build_id and shown["build_status"] == "success" and "status" not in shown
        assert state["deployments"][0]["status"] in ("PENDING", "IN_PROGRESS", "HEALTHY")
    assert [(r["method"], r["path"], r["status"]) for r in state["requests"]] == [
        ("POST", "/v5/builds", 200),
        ("POST", "/v5/agentex/deployments", 200),
        ("GET", "/v5/builds/nope", 404),
    ]


def test_records_carry_realistic_ids_and_times(emulator: Any) -> None:
    form = {"image_name": "echo", "agent_name": "echo-bot", "image_url": "r.example/echo:1"}
    build = requests.post(
        f"{emulator.url}/v5/builds", files={k: (None, v) for k, v in form.items()}, headers=emulator.headers
    ).json()
    assert len(build["id"]) == len("build_") + 24 and build["created_at"].endswith("Z")
    assert build["created_by"]["object"] == "identity" and build["account_id"] == "test-account"
    created = datetime.fromisoformat(build["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_accepted_connections_have_nagle_off() -> None:
    # Headers and body go out in two writes: with Nagle on, a kept-alive answer's body waits ~40 ms for an ACK.
    server = EmulatorServer(EmulatorConfig(api_key="k", account_id="a"))
    try:
        host, port = server.server_address[:2]
        assert isinstance(host, str)
        with socket.create_connection((host, port), timeout=5):
            accepted, _ = server.get_request()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.server_close()
        shutil.rmtree(server.upload_dir, ignore_errors=True)
