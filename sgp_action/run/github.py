"""A run's GitHub deployments: started with the build, ended with the run, made inactive with the preview.

Only on GitHub, with `github-token`, and never in a dry run; `sgp_action.ci.deployments` makes the calls and turns
every failure into one warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sgp_action.ci.deployments import (
    DeploymentRequest,
    GitHubDeployments,
    final_state,
    preview_environment,
    render_url,
)

if TYPE_CHECKING:
    from sgp_action.run.state import RunState

#: The production environment's name when the environments file names none.
DEFAULT_PRODUCTION = "production"


def _redact(ctx: RunState, text: str) -> str:
    for secret in (ctx.settings.github_token, getattr(ctx.settings, "api_key", "")):
        if secret:
            text = text.replace(secret, "***")
    return ctx.runner.redact(text)


def github_deployments(ctx: RunState) -> GitHubDeployments | None:
    """The client for this run's GitHub deployments, or None where there are none to make."""
    event, settings = ctx.event, ctx.settings
    if event.forge != "github" or settings.dry_run or not settings.github_token:
        return None
    if not (event.api_url and event.repository):
        return None

    def warn(text: str) -> None:
        ctx.runner.warning(_redact(ctx, text), title="GitHub deployment")

    return GitHubDeployments(event.api_url, event.repository, settings.github_token, warn=warn)


def start_deployment(
    ctx: RunState, *, agent: str, label: str | None, environment: str | None
) -> GitHubDeployments | None:
    """Create the GitHub deployment of a preview (`label`) or of production, `in_progress`; None when not made."""
    deployments = github_deployments(ctx)
    sha = ctx.event.head_sha or ctx.event.sha
    if deployments is None or not sha:
        return None
    production = label is None
    what = f"preview {label}" if label else f"{agent} to {environment or DEFAULT_PRODUCTION}"
    deployments.start(
        DeploymentRequest(
            sha=sha,
            environment=preview_environment(label) if label else environment or DEFAULT_PRODUCTION,
            production=production,
            agent=agent,
            log_url=ctx.event.run_url,
            description=f"Building and deploying {what}",
        )
    )
    return deployments


def deployment_url(ctx: RunState, agent: str) -> str:
    """The `deployment-url` template filled in with what the run reported (empty without a template)."""
    report = ctx.report
    values = {
        "deployment_id": report.deployment_id,
        "label": report.preview_label,
        "agent": agent,
        "sha": ctx.event.head_sha or ctx.event.sha,
        "environment": ctx.settings.environment or "",
        "namespace": report.namespace,
        "release": report.helm_release_name,
    }
    return render_url(ctx.settings.deployment_url, values)


def finish_deployment(
    ctx: RunState, deployments: GitHubDeployments | None, exit_code: int, *, deadline: float | None = None
) -> bool:
    """Give the GitHub deployment its final status and description; False when there was none to update.

    A cancelled run must pass `deadline` (a `time.monotonic()` value): its exit may not wait for the forge.
    """
    if deployments is None or (ctx.token.cancelled and deadline is None):
        return False
    report = ctx.report
    state = final_state(report.result, exit_code)
    if state == "success":
        where = f" ({report.helm_release_name})" if report.helm_release_name else ""
        description = f"SGP deployment {report.deployment_id} is {report.deployment_status or 'created'}{where}"
    else:
        first = report.message.splitlines()[0] if report.message else "no detail"
        description = f"{report.result or 'failure'}: {first}"
    url = report.deployment_url if state == "success" else ""
    return deployments.finish(state, _redact(ctx, description), url, deadline=deadline)


def deactivate_previews(ctx: RunState, previews: Iterable[tuple[str, str | None]]) -> int:
    """Mark the GitHub deployments of deleted previews (label, agent) `inactive`; how many were marked."""
    deployments = github_deployments(ctx)
    if deployments is None or ctx.token.cancelled:
        return 0
    return deployments.deactivate(previews, ctx.event.run_url)
