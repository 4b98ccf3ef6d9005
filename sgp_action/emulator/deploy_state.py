"""The deployment half of the emulator's store: create, supersede, expire, delete, list and page logs.

A deployment's status, events and log lines come from its timeline (`deploys.deploy_timeline`) and the time since
it was created; a delete, a supersede or an expiry freezes the timeline where it stood.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sgp_action.emulator.config import INACTIVE, REGISTRY, EmulatorConfig, identity
from sgp_action.emulator.deploys import DeployRequest, deploy_timeline, iso
from sgp_action.emulator.records import BuildRecord, DeployRecord, HttpError, deploy_view, paginate
from sgp_action.emulator.variants import VariantHolder, stamp, status_word


class DeploymentStore:
    """Deployment operations; `state.Store` mixes this in and supplies the builds and the lock."""

    config: EmulatorConfig
    lock: threading.RLock
    variants: VariantHolder
    deploys: dict[str, DeployRecord]

    def _next_seq(self) -> int:
        raise NotImplementedError

    def get_build_record(self, build_id: str, account: str) -> BuildRecord:
        """The record of a build in this account, or a 404 (supplied by the store)."""
        raise NotImplementedError

    def progress(self, rec: BuildRecord, now: float) -> tuple[str, list[str], float | None, float | None]:
        """A build's status and log lines at `now` (supplied by the store)."""
        raise NotImplementedError

    def foreign_agent(self, account: str, name: str) -> None:
        """Under the `foreign-agent` variant, find `name` made elsewhere on first mention (supplied by the store)."""
        raise NotImplementedError

    def create_deploy(self, req: DeployRequest, account: str, api_key: str, fail: bool) -> dict[str, Any]:
        """Store a deployment after the build checks of docs/sgp-api.md#create-a-deployment; supersede the agent's
        production one."""
        with self.lock:
            now = time.monotonic()
            image = f"{REGISTRY}/{account}/{req.image_name}:{req.image_tag}"
            if req.build_id is not None:
                build = self.get_build_record(req.build_id, account)
                status = self.progress(build, now)[0]
                if status != "success":
                    raise HttpError(400, f"build {req.build_id!r} is {status}; only a successful build can be deployed")
                if build.agent_name != req.agent_name:
                    raise HttpError(
                        400,
                        f"manifest agent.name {req.agent_name!r} does not match the build's agent {build.agent_name!r}",
                    )
                image = build.image_url
            deploy_id = f"deploy_{secrets.token_hex(12)}"
            if req.preview:
                release = f"{req.agent_name}-{req.preview_label or 'preview'}-{secrets.token_hex(2)}"
            else:
                release = req.agent_name
                for old in self.deploys.values():
                    if (
                        old.account_id == account
                        and old.agent_name == req.agent_name
                        and not old.preview
                        and self._deploy_state(old, now)[0] not in INACTIVE
                    ):
                        self._finish(old, now, "SUPERSEDED", f"Superseded by deployment {deploy_id}")
            rec = DeployRecord(
                id=deploy_id,
                seq=self._next_seq(),
                account_id=account,
                agent_name=req.agent_name,
                created_at=datetime.now(timezone.utc),
                created_mono=now,
                created_by=identity(api_key),
                manifest_file=req.manifest_file,
                environment_config=req.environment_config,
                namespace=req.namespace,
                build_id=req.build_id,
                preview=req.preview,
                preview_label=req.preview_label,
                expires_at=req.expires_at,
                helm_release_name=release,
                timeline=deploy_timeline(req.agent_name, req.namespace, release, image, fail),
                duration=max(self.config.deploy_seconds, 0.0),
            )
            self.deploys[deploy_id] = rec
            return self._deploy_view(rec, now)

    def _finish(self, rec: DeployRecord, now: float, status: str, why: str) -> None:
        at = now - rec.created_mono
        rec.final_status, rec.frozen_at = status, at
        rec.extra_events.append((at, "Normal", "Killing" if status != "SUPERSEDED" else "Superseded", why))

    def _deploy_state(self, rec: DeployRecord, now: float) -> tuple[str, float]:
        """(status, elapsed seconds on its timeline); expires a preview whose time has come."""
        if rec.final_status is None and rec.expires_at is not None and datetime.now(timezone.utc) >= rec.expires_at:
            expired_at = rec.created_mono + (rec.expires_at - rec.created_at).total_seconds()
            self._finish(rec, min(now, expired_at), "DELETED", f"Preview expired at {iso(rec.expires_at)}")
        elapsed = rec.frozen_at if rec.frozen_at is not None else now - rec.created_mono
        status = "PENDING"
        for step in rec.timeline:
            if step.status and step.at * rec.duration <= elapsed:
                status = step.status
        if status == "HEALTHY":
            rec.ever_healthy = True
        return (rec.final_status or status), elapsed

    def _deploy_view(self, rec: DeployRecord, now: float) -> dict[str, Any]:
        status, elapsed = self._deploy_state(rec, now)
        variants = self.variants.current
        events = [
            (step.at * rec.duration, *step.event)
            for step in rec.timeline
            if step.event and step.at * rec.duration <= elapsed
        ]
        events += rec.extra_events
        shown = [
            {"type": kind, "reason": reason, "message": message, "timestamp": stamp(self._wall(rec, at), variants)}
            for at, kind, reason, message in sorted(events, key=lambda e: e[0])
        ]
        return deploy_view(rec, status, shown, self.config.dialect, variants)

    @staticmethod
    def _wall(rec: DeployRecord, offset: float) -> datetime:
        return rec.created_at + timedelta(seconds=offset)

    def get_deploy_record(self, deploy_id: str, account: str) -> DeployRecord:
        """The record of a deployment in this account, or a 404."""
        rec = self.deploys.get(deploy_id)
        if rec is None or rec.account_id != account:
            raise HttpError(404, f"deployment {deploy_id!r} not found")
        return rec

    def get_deploy(self, deploy_id: str, account: str) -> dict[str, Any]:
        """`GET /v5/agentex/deployments/{id}`."""
        with self.lock:
            return self._deploy_view(self.get_deploy_record(deploy_id, account), time.monotonic())

    def delete_deploy(self, deploy_id: str, account: str) -> dict[str, Any]:
        """`DELETE /v5/agentex/deployments/{id}`: mark DELETED; already DELETED/CANCELLED/SUPERSEDED is a 400."""
        with self.lock:
            rec = self.get_deploy_record(deploy_id, account)
            now = time.monotonic()
            status = self._deploy_state(rec, now)[0]
            if status in ("DELETED", "CANCELLED", "SUPERSEDED"):
                variants = self.variants.current
                shown = status_word(status.lower() if self.config.dialect == "legacy" else status, variants)
                if "delete-ended-404" in variants:
                    raise HttpError(404, f"deployment {deploy_id!r} not found")
                code = 409 if "delete-ended-409" in variants else 400
                raise HttpError(code, f"deployment {deploy_id!r} is already {shown} and cannot be deleted")
            self._finish(rec, now, "DELETED", "Deleted by request: Kubernetes resources removed")
            return self._deploy_view(rec, now)

    def list_deploys(self, query: Mapping[str, str], account: str) -> dict[str, Any]:
        """`GET /v5/agentex/deployments` with exact-match filters and cursor paging."""
        with self.lock:
            if query.get("agent_name"):
                self.foreign_agent(account, query["agent_name"])
            now = time.monotonic()
            found = [
                d
                for d in self.deploys.values()
                if d.account_id == account
                and (not query.get("agent_name") or d.agent_name == query["agent_name"])
                and (not query.get("build_id") or d.build_id == query["build_id"])
                and (not query.get("preview_label") or d.preview_label == query["preview_label"])
            ]
            return paginate(
                found,
                query,
                lambda d: d.id,
                {"created_at": lambda d: d.seq, "id": lambda d: d.id},
                lambda d: self._deploy_view(d, now),
                self.variants.current,
                "null",
            )

    def deploy_logs(self, deploy_id: str, account: str, cursor: str, limit: int) -> dict[str, Any]:
        """`GET /v5/agentex/deployments/{id}/logs` (docs/sgp-api.md#deployment-logs): lines after `cursor`, at most
        `limit`."""
        with self.lock:
            rec = self.get_deploy_record(deploy_id, account)
            elapsed = self._deploy_state(rec, time.monotonic())[1]
            base_ns = int(rec.created_at.timestamp() * 1_000_000_000)
            lines = []
            for index, step in enumerate(rec.timeline):
                if step.log is None or step.at * rec.duration > elapsed:
                    continue
                offset = step.at * rec.duration
                line_id = f"{base_ns + int(offset * 1_000_000_000):020d}-{index:04d}"
                if line_id > cursor:
                    level, message = step.log
                    when = stamp(self._wall(rec, offset), self.variants.current)
                    lines.append({"id": line_id, "message": message, "log_level": level, "timestamp": when})
            page = lines[:limit]
            return {
                "deployment_id": rec.id,
                "lines": page,
                "has_more": len(page) == limit,
                "next_cursor": page[-1]["id"] if page else cursor,
            }
