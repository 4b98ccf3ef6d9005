"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project_root() -> Path:
    """The repository root."""
    return ROOT


# --- the local SGP emulator (sgp_action/emulator) ------------------------------------------------------------
# `emulator` starts one in a background thread with fast builds and deployments; parametrize it indirectly with a
# dialect name or a dict of EmulatorConfig overrides: @pytest.mark.parametrize("emulator", ["legacy"], indirect=True).
# `emulator_factory(**overrides)` starts more; `emulator_process(*flags)` runs the real CLI as a subprocess.

import contextlib  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402

EMULATOR_API_KEY = "test-api-key"
EMULATOR_ACCOUNT_ID = "test-account"


@dataclass
class EmulatorHandle:
    """A running emulator as tests see it."""

    url: str
    api_key: str = EMULATOR_API_KEY
    account_id: str = EMULATOR_ACCOUNT_ID
    dialect: str = "current"
    server: Any = None  # the EmulatorServer when it runs in this process
    process: subprocess.Popen[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """The two auth headers SGP wants."""
        return {"x-api-key": self.api_key, "x-selected-account-id": self.account_id}

    def state(self) -> dict[str, Any]:
        """GET /_emulator/state."""
        response = requests.get(f"{self.url}/_emulator/state", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def set_faults(self, specs: list[str]) -> None:
        """POST /_emulator/faults ([] clears)."""
        requests.post(f"{self.url}/_emulator/faults", json=specs, timeout=10).raise_for_status()

    def sdk(self, **kwargs: Any) -> Any:
        """The official SDK's client pointed at this emulator, without retries unless asked."""
        from scale_gp_beta import SGPClient

        options = {"api_key": self.api_key, "account_id": self.account_id, "base_url": self.url, "max_retries": 0}
        return SGPClient(**{**options, **kwargs})


def _start_emulator(overrides: dict[str, Any]) -> EmulatorHandle:
    from sgp_action.emulator import EmulatorConfig, EmulatorServer

    options: dict[str, Any] = {
        "api_key": EMULATOR_API_KEY,
        "account_id": EMULATOR_ACCOUNT_ID,
        "build_seconds": 0.6,
        "deploy_seconds": 0.6,
        "seed": 7,
    }
    options.update(overrides)
    server = EmulatorServer(EmulatorConfig(**options)).start()
    return EmulatorHandle(
        url=server.url,
        api_key=options["api_key"] or EMULATOR_API_KEY,
        account_id=options["account_id"] or EMULATOR_ACCOUNT_ID,
        dialect=options.get("dialect", "current"),
        server=server,
    )


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorHandle]]:
    """Start emulators in background threads: `emulator_factory(dialect="legacy", build_seconds=0.3, ...)`."""
    started: list[EmulatorHandle] = []

    def start(**overrides: Any) -> EmulatorHandle:
        handle = _start_emulator(overrides)
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
    import io
    import tarfile

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


def agent_yaml(agent: str = "echo-bot", namespace: str | None = "team-echo", **principal: str) -> tuple[str, str]:
    """(manifest.yaml text, environments.yaml text) for a deploy request."""
    manifest = (
        "build:\n  context:\n    root: .\n    dockerfile: Dockerfile\n"
        f"agent:\n  name: {agent}\n  acp_type: sync\n  description: test agent\n"
    )
    who = principal or {"service_account_id": "00000000-0000-0000-0000-000000000000"}
    lines = ["schema_version: v1", "environments:", "  prod:"]
    if namespace is not None:
        lines += ["    kubernetes:", f"      namespace: {namespace}"]
    lines += ["    auth:", "      principal:"] + [f"        {k}: {v}" for k, v in who.items()]
    return manifest, "\n".join(lines) + "\n"


@pytest.fixture
def deploy_yaml() -> Callable[..., tuple[str, str]]:
    """`deploy_yaml(agent="echo-bot", namespace="team-echo")` -> (manifest text, environment config text)."""
    return agent_yaml


# --- a checkout that keeps its credentials (actions/checkout's default) -------------------------------------------

CHECKOUT_TOKEN = "c2dwLWFjdGlvbi10ZXN0LXRva2VuLTAwMDA="  # base64 of a fake `x-access-token:...`


def keep_checkout_credentials(repo: Path) -> str:
    """Add the `extraheader` line actions/checkout writes to `repo/.git/config`; return the token text it holds."""
    config = repo / ".git" / "config"
    config.parent.mkdir(parents=True, exist_ok=True)
    text = config.read_text(encoding="utf-8") if config.exists() else "[core]\n\trepositoryformatversion = 0\n"
    text += f'[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic {CHECKOUT_TOKEN}\n'
    config.write_text(text, encoding="utf-8")
    return CHECKOUT_TOKEN
