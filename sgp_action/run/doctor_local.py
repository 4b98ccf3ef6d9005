"""The doctor's checks of the checkout and the event: manifest, environments, build context, `auto`, forge token.

Nothing here talks to SGP. The build context is packaged into a temporary directory (removed at once) with the same
code a deploy uses, so its size is the one the upload would have. The forge checks send GETs only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from sgp_action import USER_AGENT
from sgp_action.api.transport import short_reason
from sgp_action.ci.report import plural
from sgp_action.errors import ActionError, InputError, ManifestError
from sgp_action.packaging.archive import BuildContextSpec, build_context, human_size

if TYPE_CHECKING:
    from sgp_action.ci.event import WorkflowEvent
    from sgp_action.packaging.manifest import Manifest
    from sgp_action.run.doctor import Checklist
    from sgp_action.run.settings import Settings


def _shown(path: Path, settings: Settings) -> str:
    try:
        return str(path.relative_to(settings.working_directory))
    except ValueError:
        return str(path)


def check_files(checks: Checklist, settings: Settings) -> Manifest | None:
    """The manifest and environments parse and validate, and the environment to deploy to resolves."""
    from sgp_action.packaging.manifest import load_environments, load_manifest
    from sgp_action.run.doctor import inert

    manifest: Manifest | None = None
    try:
        manifest = load_manifest(settings.manifest)
        image = settings.image_name or manifest.image_name
        checks.ok("manifest", f"{_shown(settings.manifest, settings)}: agent {manifest.agent_name}, image {image}")
    except ManifestError as exc:
        checks.fail("manifest", inert(exc, 300), "correct the manifest input's file as the message says", server=False)
    try:
        environments = load_environments(settings.environments)
    except ManifestError as exc:
        checks.fail("environments", inert(exc, 300), "correct the environments file as said", server=False)
        checks.skip("environment", "needs a valid environments file")
        return manifest
    checks.ok("environments", f"{_shown(settings.environments, settings)}: {', '.join(environments.keys)}")
    try:
        key, _ = environments.select(settings.environment)
        checks.ok("environment", f"deploys to {key}")
    except ManifestError as exc:
        checks.fail("environment", inert(exc, 300), "set the environment input to one the file defines", server=False)
    return manifest


def check_context(checks: Checklist, settings: Settings, manifest: Manifest, max_bytes: int) -> None:
    """Package the build context to a temporary directory: files, size against the limit, secret-looking files."""
    from sgp_action.run.doctor import inert

    with tempfile.TemporaryDirectory(prefix="sgp-doctor-", dir=settings.temp_dir) as workdir:
        try:
            spec = BuildContextSpec.from_manifest(manifest, follow_symlinks=settings.follow_symlinks)
            result = build_context(spec, Path(workdir) / "context.tar.gz", max_bytes=max_bytes)
        except ActionError as exc:
            checks.fail(
                "build context",
                inert(exc, 300),
                "exclude what the image does not need with .dockerignore, or fix the manifest's build section",
                server=False,
            )
            return
    checks.ok(
        "build context",
        f"{plural(result.file_count, 'file')}, {human_size(result.raw_bytes)} raw, "
        f"{human_size(result.compressed_bytes)} compressed of the {human_size(max_bytes)} limit",
    )
    if result.secret_like:
        listed = ", ".join(inert(name, 60) for name in result.secret_like[:5])
        more = f" and {len(result.secret_like) - 5} more" if len(result.secret_like) > 5 else ""
        checks.warn(
            "secret-looking files",
            f"{listed}{more} would be uploaded",
            "list them in .dockerignore unless the image needs them",
        )


def check_auto(checks: Checklist, settings: Settings, event: WorkflowEvent) -> None:
    """What `command: auto` would do for the current event."""
    from sgp_action.ci.event import resolve_command
    from sgp_action.run.doctor import inert

    try:
        command = resolve_command("auto", event)
    except InputError as exc:
        checks.warn("command: auto", inert(exc, 200), "set the command input for this kind of run")
        return
    what = f"{inert(event.event_name)}"
    if event.action:
        what += f" ({inert(event.action, 40)})"
    label = (
        f" with label {settings.preview_label}" if command in ("preview", "teardown") and settings.preview_label else ""
    )
    checks.ok("command: auto", f"{what} -> {command}{label}")


def check_forge(checks: Checklist, settings: Settings, event: WorkflowEvent, *, timeout: float) -> None:
    """With github-token: can it read the repository, its pull requests and comments (and deployments on GitHub)?"""
    if not settings.github_token:
        checks.skip("github-token", "not given: no PR comment, and cleanup cannot tell closed pull requests")
        return
    if not (event.api_url and event.repository):
        checks.warn("github-token", "no forge API URL or repository (not in a workflow run)", "run it in a workflow")
        return
    from sgp_action.run.doctor_sgp import ReadOnlySession

    base = f"{event.api_url.rstrip('/')}/repos/{event.repository}"
    with ReadOnlySession() as session:
        session.headers.update({"Authorization": f"token {settings.github_token}", "User-Agent": USER_AGENT})

        def get(path: str) -> requests.Response | str:
            try:
                return session.get(base + path, params={"per_page": 1, "limit": 1}, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                return short_reason(exc)

        _forge_repository(checks, get(""))
        reads = [("pull requests", "/pulls")]
        if event.pr_number:
            reads.append(("PR comments", f"/issues/{event.pr_number}/comments"))
        if event.forge == "github":
            reads.append(("deployments", "/deployments"))
        for what, path in reads:
            answer = get(path)
            if isinstance(answer, str) or answer.status_code >= 300:
                said = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
                checks.warn(
                    f"github-token: {what}", f"cannot read ({said})", f"give the workflow `{_scope(what)}: read`"
                )
            else:
                checks.ok(f"github-token: {what}", "can read")


def _scope(what: str) -> str:
    return {"pull requests": "pull-requests", "PR comments": "pull-requests", "deployments": "deployments"}[what]


def _forge_repository(checks: Checklist, answer: requests.Response | str) -> None:
    """Reading the repository shows whether the token is accepted and, where the forge says, if it may write."""
    if isinstance(answer, str) or answer.status_code >= 300:
        said = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
        checks.warn("github-token", f"cannot read the repository ({said})", "pass a token of this repository")
        return
    try:
        data = answer.json()
    except ValueError:
        data = None
    permissions = data.get("permissions") if isinstance(data, dict) else None
    if isinstance(permissions, dict) and "push" in permissions:
        if permissions.get("push") or permissions.get("admin"):
            checks.ok("github-token", "accepted; it may write (comments and statuses)")
        else:
            checks.warn(
                "github-token",
                "accepted but read-only: the PR comment will fail",
                "give the workflow `pull-requests: write` (Gitea/Forgejo: a token with write access)",
            )
        return
    checks.ok(
        "github-token",
        "accepted; write access cannot be seen without writing: the workflow needs `pull-requests: write`",
    )
