"""Shared test helpers: the repository root, the emulator handle tests see, agent YAML, a checkout's credentials, a
Transport that does not sleep, the action's inputs as environment variables and a Runner writing its files into a
test's folder.

Fixtures live in tests/conftest.py; everything a test module imports lives here or in the other helper modules
(fakes.py, run_helpers.py, hostile.py, throttle.py, fake_forge.py, markdown_checks.py), never in a test file.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from sgp_action.api.client import SGPClient
from sgp_action.api.transport import Transport
from sgp_action.ci.runner import Runner

ROOT = Path(__file__).resolve().parent.parent

EMULATOR_API_KEY = "test-api-key"
EMULATOR_ACCOUNT_ID = "test-account"

#: Emulated build and deployment times for in-process emulators: long enough to see the intermediate states,
#: short enough that a test waits a fraction of a second for each.
FAST_BUILD_SECONDS = 0.6
FAST_DEPLOY_SECONDS = 0.6


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


def start_emulator(overrides: dict[str, Any]) -> EmulatorHandle:
    """An emulator in a background thread of this process, with fast builds and deployments unless overridden."""
    from sgp_action.emulator import EmulatorConfig, EmulatorServer

    options: dict[str, Any] = {
        "api_key": EMULATOR_API_KEY,
        "account_id": EMULATOR_ACCOUNT_ID,
        "build_seconds": FAST_BUILD_SECONDS,
        "deploy_seconds": FAST_DEPLOY_SECONDS,
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


def create_deployment(
    client: SGPClient, label: str | None, expires: datetime | None = None, agent: str = "echo-bot"
) -> str:
    """One deployment of `agent`: a preview when `label` is given (expiring in 8 h unless said), else production."""
    manifest, environments = agent_yaml(agent)
    if label is not None and expires is None:
        expires = datetime.now(timezone.utc) + timedelta(hours=8)
    return client.create_deployment(
        manifest_file=manifest,
        environment_config=environments,
        image_name="echo-bot",
        image_tag="abc1234",
        preview=label is not None,
        preview_label=label,
        expires_at=expires,
    ).id


def error_detail(error: Any) -> str:
    """The `detail` of the JSON body of an error the official SDK raised."""
    body = error.body
    assert isinstance(body, dict), body
    return str(body["detail"])


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


# --- a Transport that records its retry delays instead of sleeping ------------------------------------------------

TRANSPORT_BASE = "http://127.0.0.1:5003/public"
TRANSPORT_KEY = "sk-very-secret-key-123"


class Sleeps(list[float]):
    """A fake `sleep` that records the delays."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def transport(sleeps: Sleeps, **kwargs: object) -> Transport:
    """A Transport to TRANSPORT_BASE with three retries, its jitter fixed at 0.5, sleeping into `sleeps`."""
    options: dict[str, object] = {"max_retries": 3, "sleep": sleeps, "jitter": lambda: 0.5}
    return Transport(TRANSPORT_BASE, TRANSPORT_KEY, "acct-1", **{**options, **kwargs})  # type: ignore[arg-type]


# --- the action's inputs as a workflow passes them ----------------------------------------------------------------

INPUT_API_KEY = "sk-test-0123456789abcdef"


def env_for(**inputs: str) -> dict[str, str]:
    """INPUT_* variables as our action.yml passes them (hyphens -> underscores), plus key and account."""
    env = {"INPUT_API_KEY": INPUT_API_KEY, "INPUT_ACCOUNT_ID": "acct-1"}
    for name, value in inputs.items():
        env["INPUT_" + name.upper()] = value
    return env


# --- a Runner inside GitHub Actions, its output and summary files in a test's folder ------------------------------

GITHUB_ACTIONS_ENV = {"GITHUB_ACTIONS": "true"}


def runner_with_files(tmp_path: Path, **env: str) -> tuple[Runner, io.StringIO]:
    """A Runner writing `tmp_path/out` (outputs) and `tmp_path/sum` (summary), and the stream it prints to."""
    stream = io.StringIO()
    environ = {
        **GITHUB_ACTIONS_ENV,
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "sum"),
        **env,
    }
    return Runner(environ, stream), stream
