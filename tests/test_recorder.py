"""The API record of `debug: true`: every request and answer as JSON Lines, bounded, and nothing secret in it."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from sgp_action.api.client import SGPClient
from sgp_action.api.recorder import MAX_BODY_CHARS, Recorder, record_path
from sgp_action.demo import pull_request_event
from sgp_action.errors import ServerError
from tests.hostile import serve
from tests.run_helpers import Workspace
from tests.support import EmulatorHandle

API_KEY = "sgp-live-key-7f3a9c1e5b"
GITHUB_TOKEN = "ghs_plantedForgeToken0123456789"
ACCOUNT = "acct-visible-42"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def echoing_server(handler: BaseHTTPRequestHandler) -> None:
    """Answers that plant both secrets in bodies, headers and cookies, as a careless proxy or server might."""
    planted = f"key={API_KEY} token={GITHUB_TOKEN}"
    if handler.path.startswith("/v5/builds/b1/logs"):
        body = b"".join(b'id: %d\ndata: {"line": "step %d ' % (n, n) + planted.encode() + b'"}\n\n' for n in (1, 2))
        body += b": a comment\n\nevent: heartbeat\ndata: {}\n\n"
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
    elif handler.command == "POST":
        body = json.dumps({"detail": f"echo {planted}"}).encode()
        handler.send_response(500)
        handler.send_header("Content-Type", "application/json")
    else:
        items = [{"id": f"b{n}", "build_status": "success", "image_name": planted} for n in range(60)]
        body = json.dumps({"items": items, "has_more": False}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Set-Cookie", f"session={API_KEY}; HttpOnly")
    handler.send_header("X-Echo", planted)
    handler.send_header("Authorization", f"Bearer {GITHUB_TOKEN}")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_every_request_and_answer_is_recorded_with_the_planted_secrets_left_out(tmp_path: Path) -> None:
    path = tmp_path / "record.jsonl"
    with serve(echoing_server) as server:
        recorder = Recorder(path, secrets=(API_KEY, GITHUB_TOKEN))
        with SGPClient.for_url(server.url, API_KEY, ACCOUNT, max_retries=0, recorder=recorder) as client:
            assert len(list(client.list_builds(agent_name=f"a-{GITHUB_TOKEN}"))) == 60
            with pytest.raises(ServerError):
                client.create_deployment(
                    manifest_file=f"agent:\n  name: echo\n# {API_KEY}\n", environment_config=GITHUB_TOKEN, build_id="b1"
                )
            with client.open_build_logs("b1", last_event_id=f"0-{API_KEY}") as stream:
                assert len(list(stream)) == 2
    text = path.read_text(encoding="utf-8")
    assert API_KEY not in text and GITHUB_TOKEN not in text  # in no body, header, query, path or message
    listed, created, opened, ended = lines(path)
    assert (listed["method"], listed["path"], listed["status"]) == ("GET", "/v5/builds", 200)
    assert listed["request_headers"]["x-api-key"] == "<redacted>"
    assert listed["request_headers"]["x-selected-account-id"] == ACCOUNT  # not a secret: it helps to read the record
    assert listed["query"]["agent_name"] == "a-***" and listed["query"]["limit"] == "100"
    assert listed["response_headers"]["Set-Cookie"] == listed["response_headers"]["Authorization"] == "<redacted>"
    assert listed["response_headers"]["X-Echo"] == "key=*** token=***"
    assert len(listed["response_body"]) < MAX_BODY_CHARS + 40 and listed["response_body"].endswith("characters)")
    assert created["status"] == 500 and "echo key=*** token=***" in created["response_body"]
    assert json.loads(created["request_body"])["environment_config"] == "***"
    assert opened["kind"] == "stream" and opened["request_headers"]["Last-Event-ID"] == "0-***"
    assert ended == {**ended, "kind": "stream-end", "events": 3, "lines": 2, "last_event_id": "2"}
    assert all(re.match(r"\d{4}-\d\d-\d\dT", entry["at"]) for entry in (listed, created, opened, ended))


def test_the_file_is_private_and_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sgp_action.api.recorder.MAX_FILE_BYTES", 2000)
    recorder = Recorder(record_path(str(tmp_path)), secrets=(API_KEY,))
    for n in range(50):
        recorder.exchange(
            method="GET", path=f"/v5/builds/{n}", query={}, request_headers={}, request_body=None, status=200
        )
    recorder.close()
    assert recorder.path.parent == tmp_path and recorder.path.name.startswith("sgp-action-api-")
    assert recorder.path.stat().st_mode & 0o777 == 0o600
    entries = lines(recorder.path)
    assert entries[-1]["kind"] == "note" and recorder.path.stat().st_size < 2500


def test_a_debug_run_names_its_record_and_nothing_secret_is_in_it(tmp_path: Path, emulator_factory: Any) -> None:
    emulator: EmulatorHandle = emulator_factory(
        api_key=API_KEY, account_id=ACCOUNT, build_seconds=0.2, deploy_seconds=0.2
    )
    workspace = Workspace(tmp_path, emulator)
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha), debug="true", github_token=GITHUB_TOKEN)
    assert run.result == "success", run.log
    (named,) = re.findall(r"recorded in (\S+) \(", run.log)
    path = Path(named)
    assert path.parent == tmp_path  # RUNNER_TEMP
    text = path.read_text(encoding="utf-8")
    assert API_KEY not in text and GITHUB_TOKEN not in text
    entries = lines(path)
    calls = [(e["method"], e["path"]) for e in entries if e["kind"] == "call"]
    assert ("POST", "/v5/builds") in calls and ("POST", "/v5/agentex/deployments") in calls
    (upload,) = [e for e in entries if e.get("method") == "POST" and e["path"] == "/v5/builds"]
    assert re.fullmatch(r"<multipart/form-data, \d+ bytes>", upload["request_body"])
    assert any(e["kind"] == "stream-end" and e["lines"] > 0 for e in entries)
