"""`command: cleanup` (what `auto` runs on `schedule`): sweep away the previews nobody needs any more.

docs/architecture.md#phases and README.md#performance, issue 5 item 4. One pass over every deployment (all list pages,
oldest first), then a delete for each active preview that is

* past its `expires_at` (the server expires previews itself, but late; this catches what it has not done yet),
* the preview of a closed pull request (`pr-<N>` label; its state asked of the forge, only with `github-token`),
* replaced: an active preview with the same label was created after it (the newest one per label is kept).

Terminal records (DELETED, CANCELLED, SUPERSEDED) are skipped, since deleting them is a 400
(docs/sgp-api.md#ended-deployments-cannot-be-deleted); a 400, 404 or 409 on delete
means someone got there first and counts as done. Deletes run on a small thread pool; 429 and `Retry-After` are
the transport's retries. No request is sent beyond the list pages, the deletes and one PR lookup per distinct PR.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sgp_action.ci.forge import ForgeClient, ForgeError
from sgp_action.ci.report import md_code, plural
from sgp_action.run.github import deactivate_previews
from sgp_action.run.teardown import delete_quietly, is_deletable

if TYPE_CHECKING:
    from sgp_action.api.models import Deployment
    from sgp_action.run.pipeline import RunState

log = logging.getLogger(__name__)

#: Deletes (and PR lookups) in flight at once: enough to sweep 2,000 previews quickly, few enough not to flood.
MAX_WORKERS = 4
PR_LABEL = re.compile(r"^pr-(\d+)$")

EXPIRED = "expired"
CLOSED = "closed"
REPLACED = "replaced"


@dataclass(frozen=True)
class Doomed:
    """One preview the sweep deletes, and why (`expired`, `closed`, `replaced`) with a human detail."""

    deployment: Deployment
    reason: str
    detail: str


def pr_number(label: str | None) -> int | None:
    """The PR number of a `pr-<N>` label, else None."""
    match = PR_LABEL.match(label or "")
    return int(match.group(1)) if match else None


def fetch_pr_state(forge: ForgeClient, number: int) -> str | None:
    """`open` / `closed` from `GET {api}/repos/{owner}/{repo}/pulls/{N}` (GitHub, Gitea, Forgejo); None if unknown.

    A failure is a warning only: an unknown state keeps the preview (deleting a live PR's preview is worse than
    keeping a dead one until it expires).
    """
    try:
        state = forge.pull_state(number)
    except ForgeError as exc:
        log.warning("PR #%d: could not ask the forge for its state (%s); keeping its previews", number, exc)
        return None
    if state is None:
        log.warning("PR #%d: the forge does not know it; keeping its previews", number)
    return state


def plan(
    deployments: Iterable[Deployment],
    now: datetime,
    pr_states: Mapping[int, str | None] | None = None,
    *,
    own_agents: frozenset[str] | None = None,
) -> list[Doomed]:
    """What to delete among `deployments` (oldest first), at time `now`, given the known PR states.

    A PR number means something only in its repository: with `own_agents` (the agents of this repository) a closed
    PR condemns only those agents' previews (and those whose agent is unknown), not another repository's `pr-<N>`.

    Only active previews are considered. The newest active preview of each agent and label is never `replaced`:
    in a monorepo, every changed agent has a preview with the PR's label.
    """
    active = [d for d in deployments if d.is_preview and is_deletable(d)]
    newest: dict[tuple[str | None, str], Deployment] = {}
    for deployment in active:
        label = deployment.preview_label
        if label is None:
            continue
        key = (deployment.agent_name, label)
        current = newest.get(key)
        if current is None or not _older(deployment, current):
            newest[key] = deployment
    states = pr_states or {}
    doomed: list[Doomed] = []
    for deployment in active:
        label = deployment.preview_label
        number = pr_number(label)
        if deployment.expires_at is not None and deployment.expires_at <= now:
            doomed.append(Doomed(deployment, EXPIRED, f"expired at {deployment.expires_at.isoformat()}"))
        elif number is not None and states.get(number) == CLOSED and _ours(deployment, own_agents):
            doomed.append(Doomed(deployment, CLOSED, f"PR #{number} is closed"))
        elif label is not None and (replacer := newest[(deployment.agent_name, label)]).id != deployment.id:
            doomed.append(Doomed(deployment, REPLACED, f"replaced by {replacer.id}"))
    return doomed


def _ours(deployment: Deployment, own_agents: frozenset[str] | None) -> bool:
    return own_agents is None or deployment.agent_name is None or deployment.agent_name in own_agents


def _older(a: Deployment, b: Deployment) -> bool:
    """True when `a` was created before `b`; without timestamps the list order (oldest first) decides."""
    if a.created_at is not None and b.created_at is not None:
        return a.created_at < b.created_at
    return False


def _pr_states(ctx: RunState, numbers: Iterable[int]) -> dict[int, str | None]:
    """One forge lookup per distinct PR, on the pool; empty without a token or a repository to ask about."""
    token, event = ctx.settings.github_token, ctx.event
    wanted = sorted(set(numbers))
    if not token or not wanted:
        return {}
    if not event.api_url or not event.repository:
        log.warning("cleanup: GITHUB_API_URL or GITHUB_REPOSITORY is unknown; closed PRs are not looked up")
        return {}
    forge = ForgeClient(event.api_url, event.repository, token)
    try:
        with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
            states = pool.map(lambda n: fetch_pr_state(forge, n), wanted)
            return dict(zip(wanted, states, strict=True))
    finally:
        forge.close()


def _delete(ctx: RunState, item: Doomed) -> bool:
    """Delete one doomed preview and record it at once, so a later failure cannot hide what was already deleted."""
    ctx.token.check()
    deployment = item.deployment
    if not delete_quietly(ctx.client, deployment.id):
        ctx.runner.info(f"{deployment.id} ({deployment.preview_label}) was already gone")
        return False
    ctx.report.add_deleted(deployment.id)
    ctx.runner.info(f"Deleted {deployment.id} ({deployment.preview_label}): {item.detail}")
    return True


def summary_markdown(doomed: list[Doomed], deleted: set[str], *, dry_run: bool) -> str:
    """The cleanup section of the job summary: each preview deleted (or, in a dry run, to delete) and why."""
    title = "Cleanup plan (dry run: nothing deleted)" if dry_run else "Cleanup"
    shown = doomed if dry_run else [d for d in doomed if d.deployment.id in deleted]
    lines = [f"#### {title}", ""]
    if not shown:
        return "\n".join([*lines, "No preview to delete.", ""])
    lines += ["| Deployment | Label | Why |", "| --- | --- | --- |"]
    for item in shown:
        label = md_code(item.deployment.preview_label or "")
        lines.append(f"| {md_code(item.deployment.id)} | {label} | {md_code(item.detail)} |")
    return "\n".join(lines) + "\n"


def sweep(ctx: RunState, *, now: datetime | None = None) -> list[str]:
    """List, plan and delete; returns the ids deleted (also the `deleted` output). `now` is for tests."""
    now = now or datetime.now(timezone.utc)
    deployments = list(ctx.client.list_deployments(sort_by="created_at", sort_order="asc"))
    own = _own_agents(ctx)
    first = plan(deployments, now, own_agents=own)
    # Only this repository's previews not already doomed need their PR's state: fewer forge requests.
    already = {item.deployment.id for item in first}
    undecided = (d for d in deployments if d.id not in already and d.is_preview and is_deletable(d) and _ours(d, own))
    numbers = [n for n in (pr_number(d.preview_label) for d in undecided) if n is not None]
    doomed = plan(deployments, now, _pr_states(ctx, numbers), own_agents=own) if numbers else first
    ctx.report.deleted = []
    listed, deleting = plural(len(deployments), "deployment"), plural(len(doomed), "preview")
    ctx.runner.info(f"Cleanup: {listed} listed, {deleting} to delete")
    if ctx.settings.dry_run:
        for item in doomed:
            ctx.runner.info(f"Would delete {item.deployment.id} ({item.deployment.preview_label}): {item.detail}")
        ctx.runner.append_summary(summary_markdown(doomed, set(), dry_run=True))
        return []
    try:
        with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
            # list() re-raises the first failure (an API error, a cancellation) once every worker has stopped.
            list(pool.map(lambda item: _delete(ctx, item), doomed))
    finally:
        ctx.runner.append_summary(summary_markdown(doomed, set(ctx.report.deleted), dry_run=False))
    deleted = set(ctx.report.deleted)
    gone = [(d.deployment.preview_label, d.deployment.agent_name) for d in doomed if d.deployment.id in deleted]
    deactivate_previews(ctx, [(label, agent) for label, agent in gone if label])
    return list(ctx.report.deleted)


def _own_agents(ctx: RunState) -> frozenset[str] | None:
    """This repository's agents, from its checkout; None (every agent) when the job checked out none."""
    from sgp_action.run.detect import repository_agents

    agents = repository_agents(ctx.settings.working_directory)
    if not ctx.settings.github_token:  # no PR state is asked for, so no closed PR is matched against anything
        return agents or None
    if not agents:
        ctx.runner.info(
            "Cleanup: no agent manifest in the checkout, so a closed PR's number is matched against every agent's "
            "pr-<N> previews; check the repository out first when other repositories share this SGP account"
        )
        return None
    ctx.runner.info(f"Cleanup: closed PRs are matched against this repository's agents: {', '.join(sorted(agents))}")
    return agents


def run(ctx: RunState) -> None:
    """`command: cleanup`: sweep every deployment; `dry-run` prints the plan and deletes nothing."""
    ctx.settings.require_credentials("cleanup")
    sweep(ctx)
    ctx.report.result = "success"
