"""The emulator's state: builds, deployments and agents, with clock-driven state machines (thread-safe).

Nothing runs in the background except reading an uploaded archive: a record's status, log lines and events are
derived from the time since it was created, so every reader (poll, SSE stream, list) sees one consistent story.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sgp_action.emulator.builds import BuildRequest, plan_logs, read_root_dockerfile
from sgp_action.emulator.config import DEFAULT_MAX_UPLOAD, REGISTRY, EmulatorConfig, identity
from sgp_action.emulator.deploy_state import DeploymentStore
from sgp_action.emulator.deploys import AGENT_NAME, deploy_timeline
from sgp_action.emulator.records import BuildRecord, DeployRecord, HttpError, build_view, paginate
from sgp_action.emulator.variants import VariantHolder

__all__ = ["DEFAULT_MAX_UPLOAD", "EmulatorConfig", "Store"]

FOREIGN_ENVIRONMENT = (
    "schema_version: v1\nenvironments:\n  prod:\n    auth:\n      principal:\n"
    "        service_account_id: 00000000-0000-0000-0000-000000000000\n"
)


class Store(DeploymentStore):
    """All records, guarded by one lock; `changed` wakes log streams when something happens."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.stopping = False
        self._seq = 0
        self.builds: dict[str, BuildRecord] = {}
        self.deploys: dict[str, DeployRecord] = {}
        self.agents: dict[tuple[str, str], str] = {}  # (account, agent name) -> agent id
        self.requests: list[dict[str, Any]] = []
        self.variants = VariantHolder(config.variants)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def stop(self) -> None:
        """Wake every waiting log stream so the server can shut down."""
        with self.changed:
            self.stopping = True
            self.changed.notify_all()

    def record_request(self, entry: dict[str, Any]) -> None:
        """Remember one API request for `/_emulator/state` (bounded)."""
        with self.lock:
            self.requests.append(entry)
            del self.requests[:-10000]

    # --- builds -----------------------------------------------------------------------------------------

    def create_build(self, req: BuildRequest, account: str, api_key: str) -> dict[str, Any]:
        """Store a new build (agent rules of docs/sgp-api.md#agent-name-creates-an-agent) and start reading its
        archive."""
        with self.lock:
            if req.agent_name is not None:
                self.foreign_agent(account, req.agent_name)
            agent_id = self._resolve_agent(req, account)
            agent_name = req.agent_name or next(
                n for (a, n), i in self.agents.items() if i == agent_id and a == account
            )
            build_id = f"build_{secrets.token_hex(12)}"
            repository = f"{REGISTRY}/{account}/{req.image_name}"
            seconds = max(self.config.build_seconds, 0.0)
            rec = BuildRecord(
                id=build_id,
                seq=self._next_seq(),
                account_id=account,
                agent_name=agent_name,
                agent_id=agent_id,
                image_name=req.image_name,
                image_tag=req.image_tag,
                image_url=req.image_url or f"{repository}:{req.image_tag}",
                created_at=datetime.now(timezone.utc),
                created_mono=time.monotonic(),
                created_by=identity(api_key),
                cloud_provider_build_id=str(uuid.uuid4()),
                source=dict(req.source),
                working_tree_hash=req.working_tree_hash,
                archive_size=req.archive.size if req.archive else 0,
                registered=req.archive is None,
                queue_seconds=0.15 * seconds,
                finish_seconds=seconds,
                cancel_seconds=max(0.05, min(1.0, seconds / 4)),
            )
            self.builds[build_id] = rec
            view = self._build_view(rec, time.monotonic())
        if req.archive is not None:
            path = req.archive.path
            threading.Thread(target=self._plan_build, args=(rec, path, repository), daemon=True).start()
        return view

    def _resolve_agent(self, req: BuildRequest, account: str) -> str:
        if req.agent_id is not None:
            if req.agent_id not in {i for (a, _), i in self.agents.items() if a == account}:
                raise HttpError(404, f"agent_id {req.agent_id!r} does not exist in this account")
            return req.agent_id
        assert req.agent_name is not None
        existing = self.agents.get((account, req.agent_name))
        if existing is not None:
            if self.config.dialect == "current" and "foreign-agent" in self.variants.current:
                raise HttpError(409, f"an agent named {req.agent_name!r} already exists")
            if self.config.dialect == "current":
                raise HttpError(
                    409,
                    f"agent_name {req.agent_name!r} is already in use (agent_id {existing}); "
                    "send agent_id to build that agent again",
                )
            return existing
        agent_id = str(uuid.uuid4())
        self.agents[(account, req.agent_name)] = agent_id
        return agent_id

    def _plan_build(self, rec: BuildRecord, path: str, repository: str) -> None:
        dockerfile: str | None = None
        problem: str | None = None
        try:
            dockerfile = read_root_dockerfile(path)
        except ValueError as exc:
            problem = str(exc)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        image_ref = f"{rec.image_name}:{rec.image_tag}"
        texts, ok = plan_logs(dockerfile, problem, rec.archive_size, image_ref, repository, rec.id)
        span = rec.finish_seconds - rec.queue_seconds
        timed = [(rec.queue_seconds + span * i / len(texts), text) for i, text in enumerate(texts)]
        with self.changed:
            rec.lines, rec.succeeds = timed, ok
            self.changed.notify_all()

    def progress(self, rec: BuildRecord, now: float) -> tuple[str, list[str], float | None, float | None]:
        """(status, log lines so far, start offset, end offset) of a build at monotonic time `now`."""
        if rec.registered:
            return "success", [f"Registered existing image {rec.image_url}"], 0.0, 0.0
        elapsed = now - rec.created_mono
        if rec.lines is None:
            return "queued", [], None, None
        start = rec.queue_seconds if elapsed >= rec.queue_seconds else None
        if rec.cancel_at is not None:
            lines = [text for at, text in rec.lines if at <= rec.cancel_at]
            done = rec.cancel_at + rec.cancel_seconds
            if elapsed < done:
                return "cancelling", lines, start, None
            return "cancelled", [*lines, "Build cancelled by request"], start, done
        lines = [text for at, text in rec.lines if at <= elapsed]
        if elapsed < rec.queue_seconds:
            return "queued", lines, None, None
        if elapsed < rec.finish_seconds:
            return "running", lines, start, None
        return ("success" if rec.succeeds else "failed"), [t for _, t in rec.lines], start, rec.finish_seconds

    def next_change(self, rec: BuildRecord, now: float) -> float | None:
        """Seconds until the build's view next changes (None: only a request can change it)."""
        if rec.registered or rec.lines is None:
            return None
        elapsed = now - rec.created_mono
        moments = [at for at, _ in rec.lines] + [rec.queue_seconds, rec.finish_seconds]
        if rec.cancel_at is not None:
            moments = [rec.cancel_at + rec.cancel_seconds]
        later = [m - elapsed for m in moments if m > elapsed]
        return min(later) if later else None

    def _build_view(self, rec: BuildRecord, now: float) -> dict[str, Any]:
        status, _, start, end = self.progress(rec, now)
        return build_view(rec, status, start, end, self.config.dialect, self.variants.current)

    def get_build_record(self, build_id: str, account: str) -> BuildRecord:
        """The record of a build in this account, or a 404."""
        rec = self.builds.get(build_id)
        if rec is None or rec.account_id != account:
            raise HttpError(404, f"build {build_id!r} not found")
        return rec

    def get_build(self, build_id: str, account: str) -> dict[str, Any]:
        """`GET /v5/builds/{id}`."""
        with self.lock:
            return self._build_view(self.get_build_record(build_id, account), time.monotonic())

    def cancel_build(self, build_id: str, account: str) -> dict[str, Any]:
        """`POST /v5/builds/{id}/cancel`: the record as it stood; queued/running builds go on to cancelled."""
        with self.changed:
            rec = self.get_build_record(build_id, account)
            now = time.monotonic()
            view = self._build_view(rec, now)
            status = self.progress(rec, now)[0]
            if status in ("queued", "running") and rec.cancel_at is None:
                rec.cancel_at = now - rec.created_mono
                if rec.lines is None:
                    rec.lines = []  # cancelled while the archive was still being read
            self.changed.notify_all()
            return view

    def list_builds(self, query: Mapping[str, str], account: str) -> dict[str, Any]:
        """`GET /v5/builds` with its filters and cursor paging."""
        with self.lock:
            if query.get("agent_name"):
                self.foreign_agent(account, query["agent_name"])
            now = time.monotonic()
            found = [
                b
                for b in self.builds.values()
                if b.account_id == account
                and not b.archived
                and all(
                    not query.get(key) or value == query[key]
                    for key, value in (
                        ("agent_name", b.agent_name),
                        ("source_commit", b.source.get("source_commit")),
                        ("working_tree_hash", b.working_tree_hash),
                    )
                )
            ]
            return paginate(
                found,
                query,
                lambda b: b.id,
                {"created_at": lambda b: b.seq, "id": lambda b: b.id},
                lambda b: self._build_view(b, now),
                self.variants.current,
            )

    def undeployed(self, account: str) -> list[dict[str, Any]]:
        """`GET /v5/builds/undeployed`: one entry per agent whose builds never reached a healthy deploy."""
        with self.lock:
            now = time.monotonic()
            for dep in self.deploys.values():
                self._deploy_state(dep, now)
            healthy = {d.agent_name for d in self.deploys.values() if d.account_id == account and d.ever_healthy}
            groups: dict[str, list[BuildRecord]] = {}
            for rec in sorted(self.builds.values(), key=lambda b: b.seq):
                if rec.account_id == account and rec.agent_name not in healthy and not rec.archived:
                    groups.setdefault(rec.agent_name, []).append(rec)
            return [
                {"agent_name": name, "latest_build": self._build_view(recs[-1], now), "total_builds": len(recs)}
                for name, recs in groups.items()
            ]

    def foreign_agent(self, account: str, name: str) -> None:
        """Under `foreign-agent`, an agent name first mentioned is found made elsewhere, an hour ago.

        It gets an archived build (no list shows it) and a healthy production deployment of that build, which is
        how a client can learn the agent's id when a create by name answers 409.
        """
        if "foreign-agent" not in self.variants.current or (account, name) in self.agents:
            return
        if not AGENT_NAME.match(name):
            return
        agent_id = str(uuid.uuid4())
        self.agents[(account, name)] = agent_id
        age = 3600.0
        created, mono = datetime.now(timezone.utc) - timedelta(seconds=age), time.monotonic() - age
        image = f"{REGISTRY}/{account}/{name}:elsewhere"
        build = BuildRecord(
            id=f"build_{secrets.token_hex(12)}",
            seq=self._next_seq(),
            account_id=account,
            agent_name=name,
            agent_id=agent_id,
            image_name=name,
            image_tag="elsewhere",
            image_url=image,
            created_at=created,
            created_mono=mono,
            created_by=identity("made-elsewhere"),
            cloud_provider_build_id=str(uuid.uuid4()),
            source={},
            working_tree_hash=None,
            registered=True,
            archived=True,
        )
        self.builds[build.id] = build
        deploy = DeployRecord(
            id=f"deploy_{secrets.token_hex(12)}",
            seq=self._next_seq(),
            account_id=account,
            agent_name=name,
            created_at=created,
            created_mono=mono,
            created_by=build.created_by,
            manifest_file=f"agent:\n  name: {name}\n",
            environment_config=FOREIGN_ENVIRONMENT,
            namespace="default",
            build_id=build.id,
            preview=False,
            preview_label=None,
            expires_at=None,
            helm_release_name=name,
            timeline=deploy_timeline(name, "default", name, image, False),
            duration=max(self.config.deploy_seconds, 0.0),
        )
        self.deploys[deploy.id] = deploy

    # --- the test hook ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """`GET /_emulator/state`: every record as the API shows it, and the requests that reached the server."""
        with self.lock:
            now = time.monotonic()
            return {
                "builds": [self._build_view(b, now) for b in sorted(self.builds.values(), key=lambda r: r.seq)],
                "deployments": [self._deploy_view(d, now) for d in sorted(self.deploys.values(), key=lambda r: r.seq)],
                "requests": list(self.requests),
            }
