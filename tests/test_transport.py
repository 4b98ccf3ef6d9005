"""Transport: headers, URL joining, error mapping, retries and Retry-After (with `responses`, no real sleeping)."""

from __future__ import annotations

import contextlib
import email.utils
import functools
import gzip
import json
import logging
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from sgp_action import USER_AGENT
from sgp_action.api.client import SGPClient
from sgp_action.api.transport import Transport, join_url, parse_retry_after, short_reason
from sgp_action.emulator.routing import MAX_JSON_BODY
from sgp_action.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    AuthError,
    BadAnswerError,
    ConflictError,
    InputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from tests.hostile import listening, send_bytes, send_json, serve
from tests.support import TRANSPORT_BASE as BASE
from tests.support import TRANSPORT_KEY as KEY
from tests.support import EmulatorHandle, Sleeps, transport


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://127.0.0.1:5003/public", "/v5/builds", "http://127.0.0.1:5003/public/v5/builds"),
        ("http://127.0.0.1:5003/public/", "/v5/builds", "http://127.0.0.1:5003/public/v5/builds"),
        ("http://127.0.0.1:5003/a/b//", "v5/builds", "http://127.0.0.1:5003/a/b/v5/builds"),
        ("https://api.example.test", "/v5/builds/x/logs", "https://api.example.test/v5/builds/x/logs"),
    ],
)
def test_join_url_keeps_the_prefix(base: str, path: str, url: str) -> None:
    assert join_url(base, path) == url


@responses.activate
def test_headers_and_prefix(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/v5/builds/b1", json={"id": "b1"})
    response = transport(sleeps).request("GET", "/v5/builds/b1", idempotent=True)
    assert response.json() == {"id": "b1"}
    sent = responses.calls[0].request
    assert sent.url == "http://127.0.0.1:5003/public/v5/builds/b1"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["x-selected-account-id"] == "acct-1"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert sent.headers["Accept"] == "application/json"
    assert "Authorization" not in sent.headers  # no Bearer scheme (docs/sgp-api.md#authentication-and-base-url)


@responses.activate
def test_none_params_are_left_out(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/v5/builds", json={})
    transport(sleeps).request("GET", "/v5/builds", idempotent=True, params={"a": None, "limit": 5, "b": "x y"})
    assert responses.calls[0].request.url == f"{BASE}/v5/builds?limit=5&b=x+y"


@pytest.mark.parametrize(
    ("status", "body", "cls", "words"),
    [
        (401, {"detail": "invalid API key"}, AuthError, ["GET /v5/builds/b1", "401", "invalid API key", "api-key"]),
        (403, {"detail": "forbidden"}, AuthError, ["403", "check account-id and the key's permissions"]),
        (404, {"detail": "Build not found"}, NotFoundError, ["404", "Build not found", "check the id"]),
        (409, {"detail": "agent name 'x' is already used"}, ConflictError, ["409", "agent name 'x' is already used"]),
        (400, {"detail": "image_name is required"}, ValidationError, ["400", "image_name is required"]),
        (
            422,
            {
                "detail": [
                    {"loc": ["body", "image_name"], "msg": "field required", "type": "missing"},
                    {"loc": ["query", "limit"], "msg": "must be <= 10000", "type": "value_error"},
                ]
            },
            ValidationError,
            ["422", "image_name: field required; query.limit: must be <= 10000"],
        ),
        (413, "Request Entity Too Large", PayloadTooLargeError, ["413", "500 MB", "exclude more files"]),
        (429, {"detail": "slow down"}, RateLimitError, ["429", "rate limited after 3 retries"]),
        (500, "Internal Server Error", ServerError, ["500", "Internal Server Error", "after 3 retries"]),
        (502, "", ServerError, ["502", "server error"]),
        (418, {"message": "teapot"}, ApiError, ["418", "teapot"]),
    ],
)
@responses.activate
def test_status_errors(sleeps: Sleeps, status: int, body: object, cls: type[ApiError], words: list[str]) -> None:
    if isinstance(body, str):
        responses.get(f"{BASE}/v5/builds/b1", body=body, status=status)
    else:
        responses.get(f"{BASE}/v5/builds/b1", json=body, status=status)
    with pytest.raises(ApiError) as caught:
        transport(sleeps).request("GET", "/v5/builds/b1", idempotent=True)
    assert type(caught.value) is cls
    for word in words:
        assert word in str(caught.value)
    assert caught.value.status_code == status
    assert caught.value.method == "GET"
    assert caught.value.url == f"{BASE}/v5/builds/b1"
    assert caught.value.exit_code == 3


@responses.activate
def test_redirects_are_not_followed(sleeps: Sleeps) -> None:
    """Following would resend x-api-key to whatever host the Location names."""
    responses.get(f"{BASE}/v5/builds/b1", status=302, headers={"Location": "https://elsewhere.test/v5/builds/b1"})
    with pytest.raises(
        ApiError, match=r"redirects to the host elsewhere\.test \(https://elsewhere\.test/v5/builds/b1\)"
    ) as caught:
        transport(sleeps).request("GET", "/v5/builds/b1", idempotent=True)
    assert len(responses.calls) == 1
    assert caught.value.status_code == 302


@responses.activate
def test_api_key_never_in_messages_or_logs(sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(f"{BASE}/v5/builds/b1", json={"detail": f"key {KEY} is unknown"}, status=503)
    responses.get(f"{BASE}/v5/builds/b1", json={"detail": f"key {KEY} is unknown"}, status=401)
    t = transport(sleeps)
    with pytest.raises(AuthError) as caught:
        t.request("GET", "/v5/builds/b1", idempotent=True)
    assert KEY not in str(caught.value) and "key *** is unknown" in str(caught.value)
    assert KEY not in str(caught.value.body)
    assert KEY not in repr(t)
    assert KEY not in caplog.text
    assert "retry 1 of 3" in caplog.text


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
@responses.activate
def test_get_retries_then_succeeds(sleeps: Sleeps, caplog: pytest.LogCaptureFixture, status: int) -> None:
    responses.get(f"{BASE}/v5/builds", status=status)
    responses.get(f"{BASE}/v5/builds", status=status)
    responses.get(f"{BASE}/v5/builds", json={"items": []})
    with caplog.at_level(logging.WARNING, logger="sgp_action.api.transport"):
        response = transport(sleeps, backoff_base=1.0).request("GET", "/v5/builds", idempotent=True)
    assert response.status_code == 200
    assert len(responses.calls) == 3
    assert sleeps == [0.75, 1.5]  # equal jitter at 0.5: half the ceiling plus a quarter
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"GET /v5/builds: HTTP {status}; retry 1 of 3 in 0.8 s",
        f"GET /v5/builds: HTTP {status}; retry 2 of 3 in 1.5 s",
    ]


@responses.activate
def test_retries_exhausted(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/v5/builds", status=503)
    with pytest.raises(ServerError, match="after 3 retries"):
        transport(sleeps).request("GET", "/v5/builds", idempotent=True)
    assert len(responses.calls) == 4 and len(sleeps) == 3


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("7", 7.0, 7.0), ("0", 0.0, 0.0), ("2.5", 2.5, 2.5), ("3600", 60.0, 60.0), ("soon", 0.375, 0.375)],
)
@responses.activate
def test_retry_after_seconds(sleeps: Sleeps, header: str, low: float, high: float) -> None:
    responses.get(f"{BASE}/v5/builds", status=429, headers={"Retry-After": header})
    responses.get(f"{BASE}/v5/builds", json={})
    transport(sleeps, backoff_base=0.5).request("GET", "/v5/builds", idempotent=True)
    assert len(sleeps) == 1 and low <= sleeps[0] <= high  # an unreadable header falls back to the backoff


@responses.activate
def test_retry_after_http_date(sleeps: Sleeps) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    responses.get(f"{BASE}/v5/builds", status=503, headers={"Retry-After": when})
    responses.get(f"{BASE}/v5/builds", json={})
    transport(sleeps).request("GET", "/v5/builds", idempotent=True)
    assert len(sleeps) == 1 and 20 < sleeps[0] <= 30


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  12 ", 12.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 100.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # in the past
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 100.0),  # RFC 850, obsolete but allowed by RFC 9110
        ("Wed Oct 21 07:28:00 2015", 100.0),  # asctime
        ("not a date", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:26:20 GMT").timestamp()
    assert parse_retry_after(value, now=lambda: now) == expected


@pytest.mark.parametrize(
    ("jitter", "delays"),
    [(0.0, [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]), (1.0, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0])],
)
def test_backoff_is_capped_exponential_with_equal_jitter(jitter: float, delays: list[float]) -> None:
    t = Transport(BASE, KEY, "a", backoff_base=0.5, backoff_cap=8.0, jitter=lambda: jitter)
    assert [t.backoff(n) for n in range(6)] == delays


@responses.activate
def test_post_is_not_retried_on_5xx(sleeps: Sleeps) -> None:
    responses.post(f"{BASE}/v5/agentex/deployments", status=500, body="boom")
    with pytest.raises(ServerError):
        transport(sleeps).request("POST", "/v5/agentex/deployments", idempotent=False, json={})
    assert len(responses.calls) == 1 and sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
    ],
)
@responses.activate
def test_post_is_not_retried_after_it_may_have_arrived(sleeps: Sleeps, exc: Exception) -> None:
    responses.post(f"{BASE}/v5/builds", body=exc)
    with pytest.raises((ApiTimeoutError, ApiConnectionError)) as caught:
        transport(sleeps).request("POST", "/v5/builds", idempotent=False)
    if isinstance(caught.value, ApiConnectionError):
        assert "the connection broke after sending" in str(caught.value)
        assert "the server may have acted on it" in str(caught.value)
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_post_is_retried_when_never_sent(sleeps: Sleeps) -> None:
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    responses.post(f"{BASE}/v5/builds", body=requests.exceptions.ConnectionError(MaxRetryError(None, "/", refused)))  # type: ignore[arg-type]
    responses.post(f"{BASE}/v5/builds", body=requests.exceptions.ConnectTimeout("connect timed out"))
    responses.post(f"{BASE}/v5/builds", json={"id": "b1"})
    assert transport(sleeps).request("POST", "/v5/builds", idempotent=False).json() == {"id": "b1"}
    assert len(sleeps) == 2


@responses.activate
def test_post_is_retried_on_429(sleeps: Sleeps) -> None:
    """429 refuses the request without acting on it, so even a create may be sent again."""
    responses.post(f"{BASE}/v5/builds", status=429, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/v5/builds", json={"id": "b1"})
    assert transport(sleeps).request("POST", "/v5/builds", idempotent=False).json() == {"id": "b1"}
    assert sleeps == [1.0]


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), ApiTimeoutError),
        (requests.exceptions.ReadTimeout("read timed out"), ApiTimeoutError),
        (requests.exceptions.ConnectionError("reset"), ApiConnectionError),
        (requests.exceptions.ChunkedEncodingError("broken body"), ApiConnectionError),
    ],
)
@responses.activate
def test_get_transport_errors_retry_then_raise(sleeps: Sleeps, exc: Exception, cls: type[ApiError]) -> None:
    responses.get(f"{BASE}/v5/builds/b1", body=exc)
    with pytest.raises(cls, match=r"GET /v5/builds/b1: .*check base-url \(http://127\.0\.0\.1:5003/public\)"):
        transport(sleeps).request("GET", "/v5/builds/b1", idempotent=True)
    assert len(responses.calls) == 4 and len(sleeps) == 3


def test_real_refused_connection_is_retried_for_post(sleeps: Sleeps) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = Transport(f"http://127.0.0.1:{port}/public", KEY, "a", max_retries=2, sleep=sleeps)
    with pytest.raises(ApiConnectionError, match=f"POST /v5/builds: could not connect.*127.0.0.1:{port}"):
        t.request("POST", "/v5/builds", idempotent=False)
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("ftp://host", KEY, "a"), "not an http(s) URL"),
        (("127.0.0.1:5003", KEY, "a"), "not an http(s) URL"),
        ((BASE, "", "a"), "api-key is empty"),
        ((BASE, KEY, ""), "account-id is empty"),
    ],
)
def test_bad_configuration(args: tuple[str, str, str], words: str) -> None:
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Transport(*args)


def test_base_url_credentials_stay_out_of_messages() -> None:
    with pytest.raises(InputError) as caught:
        Transport("ftp://user:pw@host/x", KEY, "a")
    assert "pw" not in str(caught.value)


def test_only_an_owned_session_is_closed() -> None:
    class Session(requests.Session):
        closed = False

        def close(self) -> None:
            self.closed = True

    given = Session()
    Transport(BASE, KEY, "a", session=given).close()
    assert not given.closed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /v5/builds?x=1 (Caused by "
            "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new connection: "
            '[Errno 111] Connection refused"))',
            "Connection refused",
        ),
        ("Failed to resolve 'x.invalid' ([Errno -2] Name or service not known)", "Name or service not known"),
        ("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=30)", "Read timed out"),
        (
            "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
            "Connection aborted",
        ),
        ("something short", "something short"),
        ("x" * 400, "x" * 157 + "..."),
    ],
)
def test_short_reason_keeps_the_systems_words(text: str, reason: str) -> None:
    assert short_reason(requests.exceptions.ConnectionError(text)) == reason


def test_a_413_on_a_deployment_request_does_not_speak_of_a_build_context(emulator: EmulatorHandle) -> None:
    client = Transport(emulator.url, emulator.api_key, emulator.account_id, max_retries=0)
    with pytest.raises(PayloadTooLargeError) as caught:
        client.request("POST", "/v5/agentex/deployments", idempotent=False, json={"x": "v" * MAX_JSON_BODY})
    message = str(caught.value)
    assert "413" in message and "the JSON body is over" in message and "environments file" in message
    assert "build context" not in message and "exclude more files" not in message


# --- bounded answers, against real servers ------------------------------------------------------------------

_MIB = 2**20

# The client runs in a child process so its peak memory can be read on its own. The address space is capped at
# 1.5 GiB so that an unbounded read fails there instead of taking the machine's memory.
_CLIENT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
from sgp_action.api.client import SGPClient
from sgp_action.errors import ActionError
client = SGPClient.for_url(sys.argv[1], "key", "acct", max_retries=0)
client.get_build("warm-up")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    client.get_build("b1")
    outcome = (0, "no error")
except ActionError as exc:
    outcome = (exc.exit_code, str(exc))
except BaseException as exc:
    outcome = (-1, repr(exc)[:300])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"exit": outcome[0], "message": outcome[1], "grew_kib": after - before}))
"""


@functools.lru_cache(maxsize=1)
def _gzip_bomb() -> bytes:
    """About 2 MB of gzip that inflates to 2 GiB of zeros, made in milliseconds.

    After a full flush the compressor starts afresh, so every MiB of zeros compresses to the same bytes: one
    segment is repeated 2048 times. The trailer's CRC is left zero: a reader that checks it has already read 2 GiB.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(bytes(_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(bytes(_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH) == segment
    end = compressor.flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    trailer = (0).to_bytes(4, "little") + ((2048 * _MIB) % 2**32).to_bytes(4, "little")
    return header + segment * 2048 + end + trailer


def _send_gzip_bomb(handler: BaseHTTPRequestHandler) -> None:
    if "warm-up" in handler.path:
        send_json(handler, {"id": "warm-up", "status": "queued"})
        return
    send_bytes(handler, _gzip_bomb())


def _streamed(status: int) -> Callable[[BaseHTTPRequestHandler], None]:
    """A 100 MB JSON answer written in 1 MiB pieces, never held whole on either side."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        if "warm-up" in handler.path:
            send_json(handler, {"id": "warm-up", "status": "queued"})
            return
        head, tail = b'{"id": "b1", "status": "queued", "pad": "', b'"}'
        piece = b"a" * _MIB
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(head) + 100 * _MIB + len(tail)))
        handler.end_headers()
        handler.wfile.write(head)
        for _ in range(100):
            handler.wfile.write(piece)
        handler.wfile.write(tail)

    return respond


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("respond", "exit_code", "words"),
    [
        (_send_gzip_bomb, 3, "GET /v5/builds/b1: the answer was too large (more than 8388608 bytes once gzip-decoded"),
        (_streamed(200), 3, "GET /v5/builds/b1: the answer was too large (more than 8388608 bytes"),
        (
            _streamed(500),
            3,
            'GET /v5/builds/b1: 500 Internal Server Error ({"id": "b1"',
        ),  # an error body is read capped
    ],
    ids=["gzip-bomb-2GiB", "plain-100MB", "error-body-100MB"],
)
def test_a_huge_answer_fails_with_exit_3_and_little_memory(
    respond: Callable[[BaseHTTPRequestHandler], None], exit_code: int, words: str
) -> None:
    with serve(respond) as server:
        child = subprocess.run(
            [sys.executable, "-c", _CLIENT, server.url], capture_output=True, text=True, timeout=50, check=False
        )
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert (result["exit"], result["message"][: len(words)]) == (exit_code, words)
    assert result["grew_kib"] < 40 * 1024  # the cap is 8 MiB; it used to be the whole answer (or 2 GiB)


def test_a_small_gzip_answer_still_reads() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        send_bytes(handler, gzip.compress(json.dumps({"id": "b1", "status": "RUNNING"}).encode()))

    with serve(respond) as server, SGPClient.for_url(server.url, "key", "acct") as client:
        assert client.get_build("b1").status == "running"


def test_an_answer_in_an_encoding_never_asked_for_is_exit_3() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        send_bytes(handler, b"\x00\x01\x02\x03", encoding="br")

    with (
        serve(respond) as server,
        SGPClient.for_url(server.url, "key", "acct") as client,
        pytest.raises(BadAnswerError, match=r"GET /v5/builds/b1: the answer could not be decoded \(Content-Encoding"),
    ):
        client.get_build("b1")


@pytest.mark.parametrize(
    ("status", "location", "host"),
    [
        (301, "https://api.example.test/public/v5/builds", "api.example.test"),
        (302, "https://sso.corp.example/login?next=%2Fv5%2Fbuilds", "sso.corp.example"),
        (307, "/other/v5/builds", "127.0.0.1"),  # relative: the same host, another path
        (308, "https://user:secret@api.example.test/v5/builds", "api.example.test"),
    ],
)
def test_a_redirect_names_its_host_says_to_fix_base_url_and_is_not_followed(
    status: int, location: str, host: str
) -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with serve(respond) as server, SGPClient.for_url(server.url, KEY, "acct", max_retries=0) as client:
        with pytest.raises(ApiError) as caught:
            list(client.list_builds())
        assert server.requests == ["GET /v5/builds?limit=100"]  # one request, nothing followed
    message = str(caught.value)
    assert f"redirects to the host {host} (" in message and "fix base-url" in message
    assert caught.value.exit_code == 3 and "secret" not in message and KEY not in message


class Answering(BaseHTTPRequestHandler):
    """Answers every GET with its `name` and the request target (absolute when sent to a proxy)."""

    name = ""

    def do_GET(self) -> None:
        send_json(self, {"via": self.name, "target": self.path})

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def answering() -> Iterator[Callable[[str], str]]:
    """Starts named answering servers on 127.0.0.1; yields a factory returning each one's URL."""
    with contextlib.ExitStack() as servers:
        yield lambda name: servers.enter_context(listening(type(f"Answering_{name}", (Answering,), {"name": name})))


def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_proxy_from_the_environment_is_used(
    answering: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    _no_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", answering("proxy"))
    api = Transport("http://sgp.invalid/public", KEY, "a", max_retries=0, sleep=sleeps)
    answer = api.request("GET", "/v5/builds", idempotent=True).json()
    assert answer == {"via": "proxy", "target": "http://sgp.invalid/public/v5/builds"}


def test_no_proxy_naming_the_host_goes_direct(
    answering: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    _no_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", answering("proxy"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    api = Transport(answering("api"), KEY, "a", max_retries=0, sleep=sleeps)
    assert api.request("GET", "/v5/builds", idempotent=True).json()["via"] == "api"


def test_the_environment_is_read_once_per_transport(
    answering: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    # Proxies were looked up (with no_proxy and .netrc) for every request: 7% of a sweep. Read once, at the start.
    _no_proxy_environment(monkeypatch)
    api = Transport(answering("api"), KEY, "a", max_retries=0, sleep=sleeps)
    monkeypatch.setenv("HTTP_PROXY", answering("proxy"))
    assert api.request("GET", "/v5/builds", idempotent=True).json()["via"] == "api"
    assert api.session.trust_env is False
