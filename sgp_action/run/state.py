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
    """An `SGPClient` for the settings' base URL, key and account."""
    from sgp_action.api.client import SGPClient

    return SGPClient.for_url(settings.base_url, settings.api_key, settings.account_id)


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
