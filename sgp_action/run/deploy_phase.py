"""The deploy phase: create the deployment, then poll it, printing new events and log lines
(docs/architecture.md#phases).

Success is `healthy` or one of its synonyms in any case (docs/sgp-api.md#deployment-statuses; the classification lives
in `models`); a word never seen is warned about once and polled until the deadline; any other terminal status is a
failure that shows the events and the log tail. Deploy logs are cursor-paged: the last non-empty `next_cursor` is
kept, because an empty one would replay the whole log (docs/sgp-api.md#deployment-log-cursor).
"""

from __future__ import annotations

import collections
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NoReturn

from sgp_action.api.models import DeployEvent, Deployment, LogLine, Phase
from sgp_action.ci.report import format_timestamp
from sgp_action.durations import format_duration, format_elapsed
from sgp_action.errors import DeploymentFailed, OperationTimeout, RequestDeadlineError
from sgp_action.run.phase import AGENT_SCAN_LIMIT, CLOCK_SKEW, TAIL_LINES, PhaseBase, PhaseEnv
from sgp_action.run.teardown import is_deletable

log = logging.getLogger(__name__)

#: Log pages read per poll at most: a huge backlog is read over several polls instead of stalling the status.
MAX_PAGES_PER_POLL = 20
LOG_PAGE_SIZE = 200
#: The deployment's status is read at least this often (README.md#performance: the step ends within 1 s of the
#: deployment turning healthy). SGP has no status stream to wake on, so only a short status poll can meet that; the log
#: pages, the heavier read, keep to `poll-interval`.
STATUS_INTERVAL = 0.5
#: How many events a failure or timeout message shows.
EVENT_TAIL = 10


@dataclass
class DeploySpec:
    """What to deploy: the manifest and the chosen environment as YAML text, the build, preview details."""

    manifest_text: str
    environment_text: str
    build_id: str
    preview: bool = False
    preview_label: str | None = None
    expires_at: datetime | None = None


def format_event(event: DeployEvent) -> str:
    """One Kubernetes event as a log line: `Warning BackOff: Back-off restarting failed container`."""
    head = " ".join(part for part in (event.type, event.reason) if part)
    text = f"{head}: {event.message}" if head and event.message else head or (event.message or "")
    stamp = format_timestamp(event.timestamp)
    return f"[{stamp}] {text}" if stamp else text


def format_log_line(line: LogLine) -> str:
    """One deploy log line with its level."""
    return f"{(line.log_level or 'INFO').upper():5} {line.message}"


class DeployPhase(PhaseBase):
    """Creates one deployment and waits for it; fills the report and raises the errors of
    docs/architecture.md#errors-and-exit-codes."""

    timeout_name = "deploy-timeout"

    def __init__(self, env: PhaseEnv, *, timeout: float) -> None:
        super().__init__(env, timeout=timeout)
        self._seen_events: set[tuple[str, str, str, str]] = set()
        self._events: list[DeployEvent] = []
        self._seen_lines: set[str] = set()
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._cursor = ""
        self._unknown_words: set[str] = set()

    def create(self, spec: DeploySpec) -> Deployment:
        """Send the create request; the new deployment is registered for cancellation at once."""
        self.token.check()
        since = datetime.now(timezone.utc)

        def send() -> Deployment:
            return self.client.create_deployment(
                manifest_file=spec.manifest_text,
                environment_config=spec.environment_text,
                build_id=spec.build_id,
                preview=spec.preview,
                preview_label=spec.preview_label if spec.preview else None,
                expires_at=spec.expires_at if spec.preview else None,
            )

        with (
            self.bounded(),
            self.in_flight(self.remote.creating_deployment, lambda: [d.id for d in self.created_since(spec, since)]),
        ):
            deployment = self.create_safely("deployment", send, lambda: self.created_since(spec, since))
        self.remote.deploying(deployment.id)
        self.report.record_deployment(deployment)
        kind = f"preview {deployment.preview_label or spec.preview_label}" if spec.preview else "production"
        self.console.info(f"Deployment {deployment.id} created ({kind}, {deployment.status or 'pending'})")
        return deployment

    def created_since(self, spec: DeploySpec, since: datetime) -> list[Deployment]:
        """Active deployments of this build and label created since `since` (newest first), checked client-side."""
        earliest = since - CLOCK_SKEW
        label = spec.preview_label if spec.preview else None
        found = self.client.list_deployments(build_id=spec.build_id, sort_by="created_at", sort_order="desc")
        return [
            d
            for d in itertools.islice(found, AGENT_SCAN_LIMIT)
            if d.build_id == spec.build_id
            and d.preview_label == label
            and is_deletable(d)
            and d.created_at is not None
            and d.created_at >= earliest
        ]

    def wait(self, deployment: Deployment) -> Deployment:
        """Poll until terminal, printing new events and log lines; return the deployment once healthy."""
        started = self.clock()
        deadline = self.deadline
        status_interval = min(self.poll_interval, STATUS_INTERVAL)
        logs_due = started
        with self.console.group(f"Deployment ({deployment.id})"):
            while True:
                self.token.check()
                if self.clock() >= deadline:  # no poll is sent past it: the last one told the status
                    self._timeout(deployment)
                try:
                    with self.bounded():
                        deployment = self.client.get_deployment(deployment.id)
                        self.report.record_deployment(deployment)
                        self._warn_unknown(deployment)
                        self._print_events(deployment)
                        if deployment.phase is not Phase.IN_PROGRESS:
                            break
                        now = self.clock()
                        if now >= logs_due:
                            self._print_logs(deployment.id)
                            logs_due = now + self.poll_interval
                except RequestDeadlineError as exc:
                    self._timeout(deployment, cut=exc)
                if now >= deadline:
                    self._timeout(deployment)
                self.token.sleep(min(status_interval, max(deadline - now, 0.0)))
            # Lines written just before the terminal status are read once more (docs/sgp-api.md#deployment-log-cursor:
            # stop when has_more is false and the status is terminal).
            self._print_logs(deployment.id)
        self.remote.deploying(None)
        elapsed = format_elapsed(self.report.record_span("health", started, self.clock()))
        if deployment.phase is Phase.SUCCEEDED:
            where = f" (release {deployment.helm_release_name or '?'}, namespace {deployment.namespace or '?'})"
            self.console.info(f"Deployment {deployment.id} {deployment.status_shown} after {elapsed}{where}")
            return deployment
        raise DeploymentFailed(
            f"deployment {deployment.id} ended with status {deployment.status_shown} after {elapsed}.\n"
            + self._diagnostics()
        )

    def _warn_unknown(self, deployment: Deployment) -> None:
        """One warning per status word never seen before: it is polled as under way until deploy-timeout."""
        word = deployment.server_status
        if deployment.status_known or not word or word in self._unknown_words:
            return
        self._unknown_words.add(word)
        self.console.warning(
            f"deployment {deployment.id} has the status {word[:60]!r}, a word this action does not know; it is "
            f"polled as still under way until deploy-timeout ({format_duration(self.timeout)}). Please report the "
            "word so the action can learn it",
            title="Unknown deployment status",
        )

    def _print_events(self, deployment: Deployment) -> None:
        for event in deployment.events:
            key = (event.type or "", event.reason or "", event.message or "", format_timestamp(event.timestamp))
            if key in self._seen_events:
                continue
            self._seen_events.add(key)
            self._events.append(event)
            self.console.server_line(format_event(event))

    def _print_logs(self, deployment_id: str) -> None:
        for _ in range(MAX_PAGES_PER_POLL):
            page = self.client.deployment_logs(deployment_id, cursor=self._cursor, limit=LOG_PAGE_SIZE)
            for line in page.lines:
                # Ids are time-ordered and unique; a server that replays (cursor ignored) prints nothing twice.
                key = line.id or f"{format_timestamp(line.timestamp)} {line.message}"
                if key in self._seen_lines:
                    continue
                self._seen_lines.add(key)
                text = format_log_line(line)
                self._tail.append(text)
                self.console.server_line(text)
            if page.next_cursor:
                self._cursor = page.next_cursor
            if not page.has_more or not page.lines or not page.next_cursor:
                return

    def _diagnostics(self) -> str:
        events = [format_event(e) for e in self._events[-EVENT_TAIL:]] or ["(no events)"]
        lines = list(self._tail) or ["(no log lines)"]
        return "Last events:\n" + "\n".join(events) + "\nLast log lines:\n" + "\n".join(lines)

    def _timeout(self, deployment: Deployment, *, cut: RequestDeadlineError | None = None) -> NoReturn:
        # The deployment is left as it is: it may still turn healthy, and deleting it is the user's call.
        self.remote.deploying(None)
        status = f"last status seen {deployment.status_shown}"
        if cut is not None:
            status += "; the last status request got no answer in time"
        raise OperationTimeout(
            f"deployment {deployment.id} did not become healthy within deploy-timeout "
            f"({format_duration(self.timeout)}, {status}).\n{self._diagnostics()}"
        ) from cut
