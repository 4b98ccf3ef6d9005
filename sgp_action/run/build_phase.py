"""The build phase: agent id, reuse, streamed upload, live SSE logs while polling, terminal status
(docs/architecture.md#phases).

Threads: a `LogFollower` thread (run/build_logs.py) reads the SSE log stream and prints each line through
`Runner.server_line`; the calling thread polls `get_build` every `poll-interval`, and wakes at once when the stream
ends or the run is cancelled (an `Event`, never a fixed sleep).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sgp_action.api.deadlines import within
from sgp_action.api.models import Build, Phase
from sgp_action.durations import format_duration, format_elapsed
from sgp_action.errors import (
    ApiError,
    BuildFailed,
    ConflictError,
    InputError,
    NotFoundError,
    OperationTimeout,
    RequestDeadlineError,
    ValidationError,
)
from sgp_action.packaging.archive import human_size
from sgp_action.run.agents import id_from_conflict, id_from_deployments
from sgp_action.run.build_logs import LogFollower
from sgp_action.run.cancel import CancelToken
from sgp_action.run.phase import AGENT_SCAN_LIMIT, CLOCK_SKEW, STOP_SECONDS, Console, PhaseBase, PhaseEnv

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

#: Upload progress: a line every 10 % or every few seconds, whichever comes first.
PROGRESS_STEP = 0.10
PROGRESS_SECONDS = 3.0
#: Statuses (lowercased, either API generation) of a build still under way that a rerun may follow instead of
#: building again; `cancelling` and unknown words are left alone.
UNFINISHED_STATUSES = frozenset({"queued", "pending", "running", "in_progress", "building"})


@dataclass
class BuildSpec:
    """What to build: the packaged context (or an existing image URL) and everything sent with it."""

    agent_name: str
    image_name: str
    image_tag: str
    archive_path: Path | None = None
    image_url: str | None = None
    working_tree_hash: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    source: Mapping[str, str | bool | None] = field(default_factory=dict)


class ProgressPrinter:
    """Upload progress lines, every 10 % or every few seconds; also the cancellation point of an upload."""

    def __init__(self, console: Console, token: CancelToken, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.token = token
        self.clock = clock
        self._next_fraction = PROGRESS_STEP
        self._last_time = clock()
        self._done = False

    def __call__(self, sent: int, total: int) -> None:
        # Raising here aborts the upload mid-body: the server gets a truncated form and creates nothing.
        self.token.check()
        if self._done:
            return
        fraction = sent / total if total else 1.0
        now = self.clock()
        if fraction >= self._next_fraction or now - self._last_time >= PROGRESS_SECONDS or sent >= total:
            self.console.info(
                f"Uploading the build context: {fraction:4.0%} ({human_size(sent)} of {human_size(total)})"
            )
            while self._next_fraction <= fraction:
                self._next_fraction += PROGRESS_STEP
            self._last_time = now
            self._done = sent >= total


class BuildPhase(PhaseBase):
    """Runs one build: reuse or create, follow, wait; fills the report and raises the errors of
    docs/architecture.md#errors-and-exit-codes."""

    timeout_name = "build-timeout"

    def __init__(self, env: PhaseEnv, *, timeout: float, agent_id: str | None = None) -> None:
        """`agent_id` is the `agent-id` input: used when the agent's builds do not tell its id."""
        super().__init__(env, timeout=timeout)
        self.agent_id = agent_id

    # --- agent and reuse --------------------------------------------------------------------------------------

    def resolve_agent_id(self, agent_name: str) -> str | None:
        """The id of the agent named `agent_name` from its latest build, or None for a new agent
        (docs/sgp-api.md#agent-name-creates-an-agent)."""
        builds = self.client.list_builds(agent_name=agent_name, limit=1, sort_by="created_at", sort_order="desc")
        # An older server ignores the filter and lists everything
        # (docs/sgp-api.md#older-servers-ignore-unknown-filters): look further, and check the name.
        for build in itertools.islice(builds, AGENT_SCAN_LIMIT):
            if build.agent_name == agent_name and build.agent_id:
                log.debug("agent %s has id %s (from build %s)", agent_name, build.agent_id, build.id)
                return str(build.agent_id)
        return None

    def find_reusable(self, agent_name: str, working_tree_hash: str, *, follow: bool = True) -> Build | None:
        """A successful build of this agent with the same working-tree hash, checked client-side
        (docs/sgp-api.md#older-servers-ignore-unknown-filters).

        Failing that, a build of the same tree still unfinished (a run killed mid-build leaves one behind) is
        followed to its end instead of starting a second one: the successful build is returned, a failed one raises
        BuildFailed as `wait` does; without `follow` (a build-only run with `wait: false`) it is returned as it is.
        A failed or cancelled build is never reused.
        """
        builds = self.client.list_builds(
            agent_name=agent_name, working_tree_hash=working_tree_hash, sort_by="created_at", sort_order="desc"
        )
        unfinished: Build | None = None
        for build in itertools.islice(builds, AGENT_SCAN_LIMIT):
            if build.working_tree_hash != working_tree_hash or build.agent_name != agent_name:
                continue
            if build.phase is Phase.SUCCEEDED:
                return build
            if unfinished is None and build.status in UNFINISHED_STATUSES:
                unfinished = build
        if unfinished is None:
            return None
        self.console.info(
            f"Reusing build {unfinished.id}, still {unfinished.status}: an earlier run started it for the same agent "
            "and working-tree hash and stopped before it ended; following it instead of starting another build"
        )
        self.remote.building(unfinished.id)  # from now on a cancelled run cancels it, as it would its own
        self.report.record_build(unfinished, reused=True)
        return self.wait(unfinished) if follow else unfinished

    # --- create ------------------------------------------------------------------------------------------------

    def create(self, spec: BuildSpec) -> Build:
        """Create the build: with the agent's id when it is known, else with its name; legacy servers fall back.

        An agent made elsewhere answers a create by name with 409: its id is then found another way and the build
        sent again with it (docs/sgp-api.md#agents-made-elsewhere); an existing agent never fails the run.
        """
        with self.limited("looking up the agent"):
            agent_id = self.resolve_agent_id(spec.agent_name) or self.agent_id
        with self.bounded():
            self.token.check()
            try:
                return self._send(spec, agent_id=agent_id)
            except ConflictError as exc:
                if agent_id is not None:
                    raise
                found = self.agent_after_conflict(spec.agent_name, exc)
                return self._send(spec, agent_id=found)
            except (ValidationError, NotFoundError) as exc:
                if agent_id is None:
                    raise
                # An older server knows no agent ids (docs/sgp-api.md#agent-name-creates-an-agent): its builds name
                # the agent every time.
                log.info("the server refused agent_id (%s); sending agent_name %s instead", exc, spec.agent_name)
                return self._send(spec, agent_id=None)

    def agent_after_conflict(self, agent_name: str, conflict: ConflictError) -> str:
        """The id of an agent that exists but that no listed build names: from the 409 itself, else from its
        deployments' builds. InputError (nothing was created) asking for `agent-id` when neither tells."""
        found = id_from_conflict(conflict)
        where = "the conflict answer"
        if found is None:
            found, where = id_from_deployments(self.client, agent_name), "the build of one of its deployments"
        if found is None:
            raise InputError(
                f"the agent {agent_name} already exists (made elsewhere: the UI, sgpctl or another CI), but neither "
                f"the server's answer ({conflict}) nor its builds or deployments tell its id; set the agent-id input "
                "to the agent's id (shown by SGP's UI or sgpctl)"
            ) from conflict
        self.console.info(
            f"The agent {agent_name} already exists (made elsewhere); building it by its id {found} (from {where})"
        )
        return found

    def _send(self, spec: BuildSpec, *, agent_id: str | None) -> Build:
        since = datetime.now(timezone.utc)
        with self.in_flight(
            self.remote.creating_build, lambda: [b.id for b in self.created_since(spec, since, active_only=True)]
        ):
            build = self._create_once(spec, agent_id, since)
        self.remote.building(build.id)
        self.report.record_build(build, reused=False)
        self.console.info(f"Build {build.id} created ({build.status or 'queued'})")
        return build

    def _create_once(self, spec: BuildSpec, agent_id: str | None, since: datetime) -> Build:
        def send() -> Build:
            progress = ProgressPrinter(self.console, self.token, clock=self.clock) if spec.archive_path else None
            return self.client.create_build(
                image_name=spec.image_name,
                image_tag=spec.image_tag,
                archive_path=spec.archive_path,
                image_url=spec.image_url,
                agent_name=None if agent_id else spec.agent_name,
                agent_id=agent_id,
                build_args=dict(spec.build_args) or None,
                platform=spec.platform,
                source=dict(spec.source) or None,
                working_tree_hash=spec.working_tree_hash,
                progress=progress,
            )

        find = (lambda: self.created_since(spec, since, active_only=False)) if spec.working_tree_hash else None
        return self.create_safely("build", send, find)

    def created_since(self, spec: BuildSpec, since: datetime, *, active_only: bool) -> list[Build]:
        """Builds of this agent and working-tree hash created since `since` (newest first), checked client-side."""
        if not spec.working_tree_hash:
            return []
        earliest = since - CLOCK_SKEW
        found = self.client.list_builds(
            agent_name=spec.agent_name,
            working_tree_hash=spec.working_tree_hash,
            sort_by="created_at",
            sort_order="desc",
        )
        return [
            b
            for b in itertools.islice(found, AGENT_SCAN_LIMIT)
            if b.working_tree_hash == spec.working_tree_hash
            and b.agent_name == spec.agent_name
            and (b.phase is Phase.IN_PROGRESS or not active_only)
            and b.created_at is not None
            and b.created_at >= earliest
        ]

    # --- follow ------------------------------------------------------------------------------------------------

    def wait(self, build: Build) -> Build:
        """Print the build's logs live while polling its status; return it once successful.

        Raises BuildFailed (with the log tail) on any other terminal status, OperationTimeout after cancelling the
        build past `build-timeout`, Cancelled when the token is set.
        """
        started = self.clock()
        deadline = self.deadline
        wake = threading.Event()
        follower = LogFollower(self.client, build.id, self.console, wake)

        def on_cancel() -> None:
            follower.stop()
            wake.set()

        unregister = self.token.on_cancel(on_cancel)
        try:
            with self.console.group(f"Build logs ({build.id})"):
                follower.start()
                build = self._poll(build, follower, wake, deadline)
                complete = follower.finish(lambda: self.token.cancelled)
        finally:
            unregister()
            follower.stop()
        if not complete and not self.token.cancelled:
            self.console.warning(
                f"The log of build {build.id} may be incomplete: its stream could not be read to the end after the "
                f"build ended ({follower.last_error or 'no answer in time'}). The whole log is in SGP's UI.",
                title="Build log incomplete",
            )
        self.report.record_build(build)
        elapsed = format_elapsed(self.report.record_span("build", started, self.clock()))
        if build.phase is Phase.SUCCEEDED:
            self.remote.building(None)
            self.console.info(f"Build {build.id} {build.status} after {elapsed}: {build.image_url or build.image_name}")
            return build
        self.remote.building(None)
        tail = "\n".join(follower.tail) or "(no log lines were received)"
        raise BuildFailed(
            f"build {build.id} ended with status {build.status or 'unknown'} after {elapsed}; last log lines:\n{tail}"
        )

    def _poll(self, build: Build, follower: LogFollower, wake: threading.Event, deadline: float) -> Build:
        last_reconnect = self.clock()
        while True:
            # Cleared before the poll, not after the wait: a stream end during the request is not lost.
            wake.clear()
            self.token.check()
            if self.clock() >= deadline:  # no poll is sent past it: the last one told the status
                self._timeout(build, follower)
            try:
                with self.bounded():
                    build = self.client.get_build(build.id)
            except RequestDeadlineError as exc:
                self._timeout(build, follower, cut=exc)
            self.report.record_build(build)
            if build.phase is not Phase.IN_PROGRESS:
                return build
            now = self.clock()
            if now >= deadline:
                self._timeout(build, follower)
            # A stream that ended before the build did is reopened, at most once per poll interval, so a server
            # that keeps closing it at once is not hammered.
            if not follower.active and now - last_reconnect >= self.poll_interval:
                last_reconnect = now
                follower.start()
            wake.wait(min(self.poll_interval, max(deadline - now, 0.0)))

    def _timeout(self, build: Build, follower: LogFollower, *, cut: RequestDeadlineError | None = None) -> NoReturn:
        follower.stop()
        try:
            with within(STOP_SECONDS):  # the phase's deadline has passed: the cancel gets a few seconds of its own
                self.client.cancel_build(build.id)
            what = "it was cancelled"
        except (ApiError, RequestDeadlineError) as exc:
            what = f"cancelling it failed: {exc}"
        self.remote.building(None)
        status = f"status {build.status or 'unknown'}"
        if cut is not None:
            status += "; the last status request got no answer in time"
        raise OperationTimeout(
            f"build {build.id} did not finish within build-timeout ({format_duration(self.timeout)}, {status}); "
            f"{what}. Raise build-timeout if the build needs longer."
        ) from cut
