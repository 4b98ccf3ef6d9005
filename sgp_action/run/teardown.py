"""Deleting previews: `teardown` (every active preview of this PR's label and agent) and `replace-previous`.

The list filter is an exact match on `preview_label`, but an older server ignores filters it does not know and lists
everything (docs/sgp-api.md#older-servers-ignore-unknown-filters), so the label is checked again on each record before
anything is deleted. Deleting a record that
is already DELETED, CANCELLED or SUPERSEDED is a client error (docs/sgp-api.md#ended-deployments-cannot-be-deleted):
such records are skipped, and a 400, 404 or 409 on delete means someone (the server's expiry, a parallel job) got there
first (docs/sgp-api.md#deleting-an-ended-deployment): reported as already gone, never a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sgp_action.api.models import Deployment
from sgp_action.errors import ActionError, ConflictError, InputError, NotFoundError, ValidationError
from sgp_action.run.github import deactivate_previews
from sgp_action.run.phase import PhaseEnv

if TYPE_CHECKING:
    from sgp_action.api.client import SGPClient
    from sgp_action.run.pipeline import RunState

log = logging.getLogger(__name__)

#: Statuses a deployment cannot be deleted from (docs/sgp-api.md#delete-a-deployment): it is already gone or shares a
#: live release.
UNDELETABLE_STATUSES = frozenset({"deleted", "cancelled", "superseded"})


def is_deletable(deployment: Deployment) -> bool:
    """True for a record that still holds Kubernetes resources (anything but DELETED/CANCELLED/SUPERSEDED)."""
    return (deployment.status or "").lower() not in UNDELETABLE_STATUSES


def previews_with_label(client: SGPClient, label: str, *, agent_name: str | None = None) -> list[Deployment]:
    """Every preview whose label is exactly `label` (of agent `agent_name`, when given), newest first.

    Both are checked client-side too (docs/sgp-api.md#older-servers-ignore-unknown-filters). Previews of several agents
    share a PR's label in a monorepo, so an
    agent's teardown or replace must not touch the others'; a record whose agent is unknown is taken as the
    server's filter left it.
    """
    found = client.list_deployments(agent_name=agent_name, preview_label=label, sort_by="created_at", sort_order="desc")
    return [
        d
        for d in found
        if d.preview_label == label
        and d.is_preview
        and (agent_name is None or d.agent_name is None or d.agent_name == agent_name)
    ]


def delete_quietly(client: SGPClient, deployment_id: str) -> bool:
    """Delete one deployment; False when the server says it is already gone (400, 404 or 409), True when deleted."""
    try:
        client.delete_deployment(deployment_id)
    except (ValidationError, NotFoundError, ConflictError) as exc:
        log.info("deployment %s is already gone (%s)", deployment_id, exc)
        return False
    return True


def delete_all(
    env: PhaseEnv, deployments: Iterable[Deployment], *, keep: Callable[[Deployment], bool] = lambda d: False
) -> list[str]:
    """Delete each deletable deployment not kept; record and return the ids actually deleted."""
    deleted: list[str] = []
    for deployment in deployments:
        if keep(deployment) or not is_deletable(deployment):
            continue
        env.token.check()
        label = deployment.preview_label or "production"
        if delete_quietly(env.client, deployment.id):
            deleted.append(deployment.id)
            env.report.add_deleted(deployment.id)
            env.console.info(f"Deleted deployment {deployment.id} ({label}, was {deployment.status or 'unknown'})")
        else:
            env.console.info(f"Deployment {deployment.id} ({label}) was already gone")
    return deleted


def teardown(env: PhaseEnv, label: str, *, agent_name: str | None = None) -> list[str]:
    """Delete every active preview labelled `label` (of `agent_name`, when given); returns the deleted ids."""
    env.report.preview_label = label
    if env.report.deleted is None:
        env.report.deleted = []
    deleted = delete_all(env, previews_with_label(env.client, label, agent_name=agent_name))
    if not deleted:
        env.console.info(f"No active preview labelled {label} to delete")
    return deleted


def replace_previous(env: PhaseEnv, current: Deployment, *, agent_name: str | None = None) -> list[str]:
    """Once `current` (a preview) is healthy, delete the older active previews of its agent with the same label.

    A preview created after `current` (by a newer run of the same PR) is kept: only older ones are replaced.
    """
    if env.report.deleted is None:
        env.report.deleted = []
    label = current.preview_label or env.report.preview_label

    def keep(other: Deployment) -> bool:
        if other.id == current.id:
            return True
        return current.created_at is not None and other.created_at is not None and other.created_at > current.created_at

    agent = agent_name or current.agent_name
    return delete_all(env, previews_with_label(env.client, label, agent_name=agent), keep=keep)


def run_teardown(ctx: RunState) -> str:
    """`command: teardown`: delete this label's active previews of the manifest's agent; `dry-run` lists them."""
    label = ctx.settings.preview_label
    if not label:
        raise InputError("teardown needs a label: set preview-label, or run on a pull_request event")
    agent_name = _teardown_agent(ctx)
    if ctx.settings.dry_run:
        ctx.settings.require_credentials("teardown")
        ctx.report.preview_label = label
        ctx.report.deleted = []
        # The same choice as the real run: a record already DELETED, CANCELLED or SUPERSEDED would be skipped.
        doomed = [d for d in previews_with_label(ctx.client, label, agent_name=agent_name) if is_deletable(d)]
        for deployment in doomed:
            ctx.runner.info(f"would delete {deployment.id} ({deployment.status})")
        if not doomed:
            ctx.runner.info(f"No active preview labelled {label} to delete")
        return "success"
    with ctx.report.timed("teardown"):
        teardown(ctx.phase_env(), label, agent_name=agent_name)
    # Also when nothing was left to delete on SGP (it expired): the PR is closed, its "View deployment" is dead.
    deactivate_previews(ctx, [(label, agent_name)])
    return "success"


def _teardown_agent(ctx: RunState) -> str | None:
    """The manifest's agent, so that a PR's teardown leaves other agents' previews with its label alone.

    A PR that deleted its agent has no manifest left: then every preview with the label goes, as it should.
    """
    from sgp_action.packaging.manifest import load_manifest

    try:
        return load_manifest(ctx.settings.manifest).agent_name
    except ActionError as exc:
        ctx.runner.info(f"No agent to scope the teardown to ({exc}); deleting every preview with the label")
        return None
