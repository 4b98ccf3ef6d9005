"""`RunState`: what one run of a command carries (settings, event, runner, token, report, remote work, client).

Its own module so that the commands the pipeline hands a run to (`teardown`, `cleanup`, `detect`, `doctor`) can
name it without importing the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sgp_action.ci.report import Report
from sgp_action.run.cancel import CancelToken, RemoteWork
from sgp_action.run.phase import PhaseEnv

if TYPE_CHECKING:
    from sgp_action.api.client import SGPClient
    from sgp_action.api.protocol import ApiClient
    from sgp_action.ci.event import WorkflowEvent
    from sgp_action.ci.runner import Runner
    from sgp_action.run.settings import Settings

ClientFactory = Callable[["Settings"], "ApiClient"]


def default_client_factory(settings: Settings) -> SGPClient:
    """An `SGPClient` for the settings' base URL, key and account; with `debug`, recording every request and answer
    to a JSON Lines file under RUNNER_TEMP (sgp_action.api.recorder), which `RunState.client` names in the log."""
    from sgp_action.api.client import SGPClient
    from sgp_action.api.recorder import Recorder, record_path

    recorder = None
    if settings.debug:
        recorder = Recorder(record_path(settings.temp_dir), secrets=(settings.api_key, settings.github_token))
    return SGPClient.for_url(settings.base_url, settings.api_key, settings.account_id, recorder=recorder)


@dataclass
class RunState:
    """Everything a command needs; `cleanup` and `detect` receive it too (`run(ctx) -> None`)."""

    settings: Settings
    event: WorkflowEvent
    runner: Runner
    command: str
    token: CancelToken
    report: Report
    remote: RemoteWork
    client_factory: ClientFactory
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    _client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        """The API client, created on first use (no command that needs no API ever creates one)."""
        if self._client is None:
            self._client = self.client_factory(self.settings)
            recorder = getattr(getattr(self._client, "transport", None), "recorder", None)
            if recorder is not None:
                self.runner.info(
                    f"debug: every API request and answer of this run is recorded in {recorder.path} (the API key, "
                    "tokens, authorization headers and cookies left out); attach it to an issue when reporting one"
                )
        return self._client

    def phase_env(self) -> PhaseEnv:
        """The environment the phases work in."""
        return PhaseEnv(
            client=self.client,
            console=self.runner,
            token=self.token,
            report=self.report,
            remote=self.remote,
            poll_interval=self.settings.poll_interval,
        )

    def close(self) -> None:
        """Close the client if one was made."""
        if self._client is not None:
            self._client.close()
