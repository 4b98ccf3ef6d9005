"""The sticky PR comment: one per PR and agent, found by a hidden marker, created once and then edited.

The marker carries the head SHA and the start time of the run that wrote it:
`<!-- sgp-agentex-action:<agent> sha=<sha> at=<iso> -->`. A run does not overwrite a comment written by a run
that started later for another commit (a re-run of an old workflow must not hide the newest preview); a run of
the same commit always updates it (its result is the newest word on that commit). On Gitea and Forgejo a commit
status is posted too (docs/runner.md#github-gitea-and-forgejo). Every forge failure is a warning, never a failed run.
Two runs whose lookups overlap may both create a comment: each lists again after creating and keeps the oldest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from sgp_action.ci.forge import FORGE_BUDGET, FORGE_GRACE, Comment, ForgeClient
from sgp_action.ci.report import Report, format_timestamp, md_code, plural
from sgp_action.errors import ActionError
from sgp_action.run.cancel import call_with_deadline

if TYPE_CHECKING:
    from sgp_action.run.pipeline import RunState

log = logging.getLogger(__name__)

_GRACE = FORGE_GRACE

MARKER_PREFIX = "<!-- sgp-agentex-action:"
_MARKER = re.compile(r"<!-- sgp-agentex-action:(?P<agent>[^\s>]+)(?: sha=(?P<sha>\w*))?(?: at=(?P<at>\S+))? -->")
#: Commands whose outcome the comment describes.
COMMENT_COMMANDS = ("preview", "teardown")
_URL_SAFE = "/:?=&%#.,~+-_"


@dataclass(frozen=True)
class Marker:
    """What the hidden marker of a comment records."""

    agent: str
    sha: str = ""
    at: datetime | None = None

    def render(self) -> str:
        """The marker as an HTML comment (invisible in the rendered markdown)."""
        at = f" at={format_timestamp(self.at)}" if self.at else ""
        sha = f" sha={self.sha}" if self.sha else ""
        return f"{MARKER_PREFIX}{self.agent}{sha}{at} -->"


def parse_marker(body: str) -> Marker | None:
    """The first marker in a comment body, else None."""
    match = _MARKER.search(body)
    if not match:
        return None
    at: datetime | None = None
    if match.group("at"):
        try:
            at = datetime.fromisoformat(match.group("at").replace("Z", "+00:00"))
        except ValueError:
            at = None
    return Marker(match.group("agent"), match.group("sha") or "", at)


def find_comment(comments: list[Comment], agent: str) -> tuple[Comment, Marker] | None:
    """The comment whose marker names `agent`."""
    for comment in comments:
        marker = parse_marker(comment.body)
        if marker is not None and marker.agent == agent:
            return comment, marker
    return None


def is_superseded(existing: Marker, ours: Marker) -> bool:
    """True when the existing comment comes from a run of another commit that started after ours."""
    if existing.sha and existing.sha == ours.sha:
        return False
    return existing.at is not None and ours.at is not None and existing.at > ours.at


def render_body(marker: Marker, report: Report, command: str, run_url: str) -> str:
    """The comment's markdown; every server or user text is a code span (md_code), no secret is ever included."""
    if report.result == "success" and command == "teardown":
        status = "🗑️ preview deleted"
    elif report.result == "success":
        status = f"✅ {md_code(report.deployment_status or 'deployed')}"
    else:
        first = report.message.splitlines()[0] if report.message else ""
        status = f"❌ {report.result or 'failure'}" + (f": {md_code(first)}" if first else "")  # result is ours
    build = md_code(report.build_id) + (" (reused)" if report.reused_build else "")
    image = f"{report.image_name}:{report.image_tag}" if report.image_name else ""
    rows = [
        ("Status", status),
        ("Deployment", md_code(report.deployment_id)),
        ("Label", md_code(report.preview_label)),
        ("Expires", md_code(report.expires_at)),
        ("Build", build),
        ("Image", md_code(image)),
        ("Commit", md_code(marker.sha[:12])),
    ]
    lines = [marker.render(), f"### SGP Agentex preview: {md_code(marker.agent)}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    links = [("Open the deployment", report.deployment_url), ("Workflow run", run_url)]
    # Percent-encoded so that nothing in a URL can end the link destination or start markup.
    shown = [
        f"[{text}]({quote(url, safe=_URL_SAFE)})" for text, url in links if url.startswith(("https://", "http://"))
    ]
    if shown:
        lines += ["", " · ".join(shown)]
    return "\n".join(lines) + "\n"


def _agent_name(ctx: RunState) -> str:
    from sgp_action.packaging.manifest import load_manifest

    try:
        name = load_manifest(ctx.settings.manifest).agent_name
    except (ActionError, OSError):
        name = ""
    return re.sub(r"[^\w.-]", "-", name or ctx.report.image_name or "agent")


def _redact(ctx: RunState, text: str) -> str:
    """Remove the token, the API key and every masked value: a server message may echo a credential back."""
    for secret in (ctx.settings.github_token, getattr(ctx.settings, "api_key", "")):
        if secret:
            text = text.replace(secret, "***")
    return ctx.runner.redact(text)


def _status_state(report: Report) -> str:
    return {"success": "success", "cancelled": "error"}.get(report.result, "failure")


def update_pr_comment(ctx: RunState) -> bool:
    """Create or edit the sticky comment (and on Gitea/Forgejo the commit status); False if skipped or failed.

    Never raises: a forge failure becomes a warning annotation. Every forge call of the run shares FORGE_BUDGET
    seconds, and the run stops waiting for the forge then even if a request is stuck (a forge that drips its answer,
    a name that does not resolve): the deploy is done, and its step must end.
    """
    settings, event = ctx.settings, ctx.event
    if ctx.command not in COMMENT_COMMANDS or settings.dry_run or not settings.should_comment(event.is_pull_request):
        return False
    if ctx.token.cancelled:  # the cancel budget (cancel.py) leaves no time for forge round trips
        return False
    if not (event.api_url and event.repository and event.pr_number and settings.github_token):
        ctx.runner.warning("no forge API URL, repository or PR number: the PR comment is skipped", title="PR comment")
        return False
    number, agent = event.pr_number, _agent_name(ctx)
    ours = Marker(agent, event.head_sha, ctx.started_at.replace(microsecond=0))
    body = _redact(ctx, render_body(ours, ctx.report, ctx.command, event.run_url))
    forge = ForgeClient(event.api_url, event.repository, settings.github_token, budget=FORGE_BUDGET)
    finished, posted = call_with_deadline(lambda: _publish(ctx, forge, number, ours, body), FORGE_BUDGET + _GRACE)
    if finished:
        forge.close()
        return bool(posted)
    forge.abandon()
    ctx.runner.warning(
        f"the forge did not finish answering within {FORGE_BUDGET:g} s, so the PR comment may be missing or out of "
        "date; the deploy itself is done",
        title="PR comment",
    )
    return False


def _publish(ctx: RunState, forge: ForgeClient, number: int, ours: Marker, body: str) -> bool:
    event = ctx.event
    try:
        found = find_comment(forge.list_comments(number), ours.agent)
        if found is None:
            created = forge.create_comment(number, body)
            _settle(ctx, forge, number, ours, body, created)
        elif is_superseded(found[1], ours):
            ctx.runner.info(f"the PR comment describes a newer run ({found[1].sha[:7]}): left as it is")
            return False
        else:
            forge.edit_comment(found[0].id, body)
    except ActionError as exc:
        if not forge.abandoned:  # given up on: the caller has said so once
            ctx.runner.warning(f"could not update the PR comment: {exc}", title="PR comment")
        return False
    if event.forge != "github" and event.head_sha:
        _post_status(ctx, forge, ours.agent)
    return True


def _settle(ctx: RunState, forge: ForgeClient, number: int, ours: Marker, body: str, created: int) -> None:
    """After creating: keep only the oldest comment with our marker, holding the newest word.

    Two runs of one PR whose lookups overlap both find nothing and both create. Each then lists again, deletes
    every newer copy, and writes its body into the oldest unless that one describes a newer run: one comment stays.
    """
    copies = [
        (comment, marker)
        for comment in forge.list_comments(number)
        if (marker := parse_marker(comment.body)) is not None and marker.agent == ours.agent
    ]
    if not copies:
        return
    (oldest, marker), newer = copies[0], copies[1:]
    for comment, _ in newer:
        forge.delete_comment(comment.id)
    if newer:
        ctx.runner.info(f"removed {plural(len(newer), 'duplicate PR comment')} of a run that overlapped this one")
    if oldest.id != created and not is_superseded(marker, ours):
        forge.edit_comment(oldest.id, body)


def _post_status(ctx: RunState, forge: ForgeClient, agent: str) -> None:
    event = ctx.event
    try:
        forge.create_status(
            event.head_sha,
            _status_state(ctx.report),
            f"sgp-agentex/{agent}",
            _redact(ctx, _describe(ctx)),
            event.run_url,
        )
    except ActionError as exc:
        # The comment is up; only the status failed, most often for want of repository write access.
        ctx.runner.warning(
            f"the PR comment is updated, but the commit status was not set ({exc}). A commit status needs write "
            "access to the repository: on Gitea/Forgejo 1.26+ with `permissions:`, grant contents: write",
            title="Commit status",
        )


def _describe(ctx: RunState) -> str:
    report = ctx.report
    if report.result != "success":
        return f"{report.result}: {report.message.splitlines()[0] if report.message else ''}"
    if ctx.command == "teardown":
        return "preview deleted"
    return f"preview {report.deployment_status or 'deployed'} {report.deployment_id}".strip()
