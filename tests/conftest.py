"""Shared fixtures (helpers that test modules import live in tests/support.py and the other helper modules)."""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import listening
from tests.support import (
    EMULATOR_ACCOUNT_ID,
    EMULATOR_API_KEY,
    ROOT,
    EmulatorHandle,
    Sleeps,
    agent_yaml,
    start_emulator,
)

#: A test using one of these talks to a live emulator and waits for its emulated builds and deployments.
LIVE_EMULATOR_FIXTURES = frozenset({"emulator", "emulator_factory", "emulator_process"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test against a live emulator `e2e` too, so that `-m "not e2e"` leaves the fast tier."""
    for item in items:
        if LIVE_EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


#: Modules whose tests share expensive module-scoped fixtures (act sessions): each goes whole to one xdist worker.
WHOLE_MODULE_PREFIX = "tests/test_e2e_"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist load`, except that each tests/test_e2e_*.py module runs on one worker, its act sessions made once.

    (`--dist loadgroup` with `xdist_group` marks would say the same, but pytest-xdist 3.8 tags the node id through an
    attribute pytest 9 no longer reads, so the groups are silently ignored.)
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WholeE2EModules(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type information
        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0] if nodeid.startswith(WHOLE_MODULE_PREFIX) else nodeid

    return WholeE2EModules(config, log)


@pytest.fixture
def project_root() -> Path:
    """The repository root."""
    return ROOT


# --- the local SGP emulator (sgp_action/emulator) ------------------------------------------------------------
# `emulator` starts one in a background thread with fast builds and deployments; parametrize it indirectly with a
# dialect name or a dict of EmulatorConfig overrides: @pytest.mark.parametrize("emulator", ["legacy"], indirect=True).
# `emulator_factory(**overrides)` starts more; `emulator_process(*flags)` runs the real CLI as a subprocess.


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorHandle]]:
    """Start emulators in background threads: `emulator_factory(dialect="legacy", build_seconds=0.3, ...)`."""
    started: list[EmulatorHandle] = []

    def start(**overrides: Any) -> EmulatorHandle:
        handle = start_emulator(overrides)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.server.close()


@pytest.fixture
def emulator(request: pytest.FixtureRequest, emulator_factory: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    """One emulator (current dialect unless parametrized with a dialect name or a dict of overrides)."""
    param = getattr(request, "param", None)
    overrides = {"dialect": param} if isinstance(param, str) else dict(param or {})
    return emulator_factory(**overrides)


@pytest.fixture
def emulator_process() -> Iterator[Callable[..., contextlib.AbstractContextManager[EmulatorHandle]]]:
    """Run `python -m sgp_action emulator --port 0 FLAGS...` as a real process; stops it with SIGTERM at the end."""
    processes: list[subprocess.Popen[str]] = []

    @contextlib.contextmanager
    def run(*flags: str) -> Iterator[EmulatorHandle]:
        cmd = [sys.executable, "-m", "sgp_action", "emulator", "--port", "0", *flags]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        processes.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        prefix = "SGP emulator listening on "
        if not line.startswith(prefix):
            proc.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {proc.communicate()[1]}")

        def flag(name: str, default: str) -> str:
            return flags[flags.index(name) + 1] if name in flags[:-1] else default

        yield EmulatorHandle(
            url=line[len(prefix) :].strip(),
            api_key=flag("--api-key", EMULATOR_API_KEY),
            account_id=flag("--account-id", EMULATOR_ACCOUNT_ID),
            dialect=flag("--dialect", "current"),
            process=proc,
        )
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)

    yield run
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Path]:
    """Write a build context: `make_context({"Dockerfile": "FROM alpine\\n"})` gives a tar.gz path."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, str | bytes] | None = None, *, raw: bytes | None = None) -> Path:
        path = tmp_path / f"context-{next(counter)}.tar.gz"
        if raw is not None:
            path.write_bytes(raw)
            return path
        with tarfile.open(path, "w:gz") as archive:
            for name, content in (files or {}).items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return path

    return make


@pytest.fixture
def deploy_yaml() -> Callable[..., tuple[str, str]]:
    """`deploy_yaml(agent="echo-bot", namespace="team-echo")` -> (manifest text, environment config text)."""
    return agent_yaml


@pytest.fixture
def local_server() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], str]]:
    """`local_server(Handler)` serves with `Handler` on 127.0.0.1 and gives a base URL ending in `/prefix`."""
    with contextlib.ExitStack() as servers:
        yield lambda handler: servers.enter_context(listening(handler)) + "/prefix"


@pytest.fixture
def sleeps() -> Sleeps:
    """A fake `sleep` for a Transport or SGPClient: it records the delays instead of waiting."""
    return Sleeps()
