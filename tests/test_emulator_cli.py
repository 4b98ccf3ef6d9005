"""`sgp-action emulator` as a real process: the one `listening` line, its flags, and a clean stop on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from typing import Any

import pytest
import requests

from sgp_action import cli
from tests.support import ROOT


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulator", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--account-id",
        "--dialect",
        "--build-seconds",
        "--deploy-seconds",
        "--seed",
        "--fault",
    ):
        assert flag in out
    for fault in (
        "http-500=P",
        "rate-limit=N",
        "sse-drop-after=N",
        "slow=S",
        "lose-create-response",
        "deploy-fail",
        "sse-hold-open",
    ):
        assert fault in out


@pytest.mark.parametrize(
    "flags",
    [["--fault", "nonsense"], ["--dialect", "ancient"], ["--build-seconds", "-1"], ["--port", "x"]],
)
def test_bad_flags_are_usage_errors(flags: list[str]) -> None:
    assert cli.main(["emulator", *flags]) == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_line_serves_and_stops_cleanly_on_a_signal(emulator_process: Any, sig: signal.Signals) -> None:
    with emulator_process("--api-key", "secret", "--account-id", "acct-1") as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        ok = requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers, timeout=10)
        assert ok.status_code == 200 and emulator.api_key == "secret"
        wrong_key = {**emulator.headers, "x-api-key": "nope"}
        assert requests.get(f"{emulator.url}/v5/builds", headers=wrong_key, timeout=10).status_code == 401
        wrong_account = {**emulator.headers, "x-selected-account-id": "acct-2"}
        assert requests.get(f"{emulator.url}/v5/builds", headers=wrong_account, timeout=10).status_code == 403
        proc = emulator.process
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == ""  # nothing after the one listening line
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers, timeout=5)


def test_an_open_log_stream_does_not_block_shutdown(emulator_process: Any, make_context: Any) -> None:
    with emulator_process("--build-seconds", "60") as emulator:
        with make_context({"Dockerfile": "FROM alpine\n"}).open("rb") as handle:
            files = {"context_archive": ("c.tgz", handle, "application/gzip")}
            form = {"image_name": "echo", "agent_name": "echo-bot"}
            build = requests.post(f"{emulator.url}/v5/builds", data=form, files=files, headers=emulator.headers)
        stream = requests.get(
            f"{emulator.url}/v5/builds/{build.json()['id']}/logs", headers=emulator.headers, stream=True, timeout=30
        )
        assert stream.status_code == 200
        emulator.process.send_signal(signal.SIGTERM)
        assert emulator.process.wait(timeout=10) == 0
        stream.close()


def test_dialect_and_fault_flags_reach_the_server(emulator_process: Any) -> None:
    flags = ("--dialect", "legacy", "--deploy-seconds", "0.2", "--fault", "rate-limit=2", "--seed", "3")
    with emulator_process(*flags) as emulator:
        assert requests.get(f"{emulator.url}/_emulator/faults", timeout=10).json() == {"faults": ["rate-limit=2"]}
        form = {"image_name": "echo", "agent_name": "echo-bot", "image_url": "r.example/echo:1"}
        made = requests.post(
            f"{emulator.url}/v5/builds", files={k: (None, v) for k, v in form.items()}, headers=emulator.headers
        )
        assert made.status_code == 200 and made.json()["status"] == "success" and "build_id" in made.json()
        assert requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers).status_code == 429


def test_entrypoint_and_module_run_the_same_emulator() -> None:
    for argv in (
        [sys.executable, "-m", "sgp_action.emulator"],
        [sys.executable, str(ROOT / "entrypoint.py"), "emulator"],
    ):
        proc = subprocess.Popen([*argv, "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("SGP emulator listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1].strip()
            assert requests.get(f"{url}/_emulator/state", timeout=10).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def test_a_port_in_use_is_one_readable_line_not_a_traceback() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sgp_action", "emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
