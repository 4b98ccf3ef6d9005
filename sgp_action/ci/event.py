"""The event that started the run (`$GITHUB_EVENT_NAME`, `$GITHUB_EVENT_PATH`) and the `auto` command mapping.

Portable rules (docs/runner.md#github-gitea-and-forgejo): the commit to build and label is the payload's
`pull_request.head.sha` on pull requests, never `GITHUB_SHA` (a synthetic merge commit on GitHub); every optional
variable is read defensively
because Gitea and Forgejo leave some out; the forge is told apart by `GITEA_ACTIONS` / `FORGEJO_ACTIONS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sgp_action.errors import InputError

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
# Pull request actions that (re)deploy the preview. GitHub says `synchronize`, Gitea `synchronized`; `labeled` /
# `label_updated` and `ready_for_review` are there for workflows that opt into them with `types:` (e.g. a
# "deploy-preview" label). Other actions (edited, assigned, converted_to_draft, ...) must be mapped explicitly.
PREVIEW_ACTIONS = frozenset(
    {"opened", "synchronize", "synchronized", "reopened", "ready_for_review", "labeled", "label_updated"}
)
TEARDOWN_ACTIONS = frozenset({"closed"})
_FALLBACK_DEFAULT_BRANCHES = ("main", "master")


@dataclass(frozen=True)
class WorkflowEvent:
    """What the action needs from the event and the runner's variables. Empty strings / None when unknown."""

    event_name: str = ""
    action: str = ""
    pr_number: int | None = None
    head_sha: str = ""
    head_ref: str = ""
    base_ref: str = ""
    base_sha: str = ""  # PR base commit, or the push's `before`: the `detect` command's --base
    ref: str = ""
    sha: str = ""  # $GITHUB_SHA, for reference only
    default_branch: str = ""
    repository: str = ""
    is_fork: bool = False
    forge: str = "github"
    server_url: str = ""
    api_url: str = ""
    run_url: str = ""
    merged: bool = False
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_pull_request(self) -> bool:
        """A pull_request or pull_request_target event."""
        return self.event_name in PULL_REQUEST_EVENTS

    @property
    def is_tag(self) -> bool:
        """A push of a tag."""
        return self.ref.startswith("refs/tags/")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _forge(environ: Mapping[str, str]) -> str:
    if environ.get("FORGEJO_ACTIONS", "").lower() == "true":
        return "forgejo"
    if environ.get("GITEA_ACTIONS", "").lower() == "true":
        return "gitea"
    return "github"


def _read_payload(environ: Mapping[str, str], name: str) -> Mapping[str, Any]:
    path = environ.get("GITHUB_EVENT_PATH", "")
    if not path:
        if name:
            raise InputError(
                f"GITHUB_EVENT_PATH is not set although GITHUB_EVENT_NAME is {name!r}: the runner gave no event payload"
            )
        return {}
    try:
        with open(path, encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"the event payload {path} (GITHUB_EVENT_PATH) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"the event payload {path} (GITHUB_EVENT_PATH) cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the event payload {path} (GITHUB_EVENT_PATH) is not valid JSON: {exc.msg}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"the event payload {path} (GITHUB_EVENT_PATH) is not a JSON object")
    return data


def _pr_number(payload: Mapping[str, Any], pull: Mapping[str, Any]) -> int | None:
    for value in (pull.get("number"), payload.get("number")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _is_fork(pull: Mapping[str, Any], repository: str) -> bool:
    """Head repository differs from the base one. Comparing names works on every forge (Gitea has no `fork`
    field) and does not mistake a PR inside a repository that is itself a fork for a fork PR, as `head.repo.fork`
    alone would. A missing head repository (GitHub sends null when the fork was deleted) counts as a fork."""
    head = _obj(pull.get("head"))
    if "repo" in head and head.get("repo") is None:
        return True
    head_repo = _obj(head.get("repo"))
    head_name = _text(head_repo.get("full_name"))
    base_name = _text(_obj(_obj(pull.get("base")).get("repo")).get("full_name")) or repository
    if head_name and base_name:
        return head_name.lower() != base_name.lower()
    return head_repo.get("fork") is True


def load_event(environ: Mapping[str, str]) -> WorkflowEvent:
    """Read the event. Raises InputError when an event is named but its payload is missing or unreadable."""
    name = environ.get("GITHUB_EVENT_NAME", "")
    payload = _read_payload(environ, name)
    repo_obj = _obj(payload.get("repository"))
    repository = environ.get("GITHUB_REPOSITORY", "") or _text(repo_obj.get("full_name"))
    forge = _forge(environ)
    server = environ.get("GITHUB_SERVER_URL", "").rstrip("/") or ("https://github.com" if forge == "github" else "")
    api = environ.get("GITHUB_API_URL", "").rstrip("/")
    if not api and server == "https://github.com":
        api = "https://api.github.com"
    # GitHub links runs by id; Gitea and Forgejo by the per-repository run number.
    run_key = environ.get("GITHUB_RUN_ID" if forge == "github" else "GITHUB_RUN_NUMBER", "")
    run_url = f"{server}/{repository}/actions/runs/{run_key}" if server and repository and run_key else ""
    pull = _obj(payload.get("pull_request"))
    # A push payload's `ref` is what was pushed; elsewhere GITHUB_REF (refs/pull/N/merge or /head on PRs).
    pushed = _text(payload.get("ref")) if name == "push" else ""
    ref = pushed or environ.get("GITHUB_REF", "") or _text(payload.get("ref"))
    common: dict[str, Any] = {
        "event_name": name,
        "action": _text(payload.get("action")),
        "ref": ref,
        "sha": environ.get("GITHUB_SHA", ""),
        "default_branch": _text(repo_obj.get("default_branch")),
        "repository": repository,
        "forge": forge,
        "server_url": server,
        "api_url": api,
        "run_url": run_url,
        "payload": payload,
    }
    if name in PULL_REQUEST_EVENTS or pull:
        head, base = _obj(pull.get("head")), _obj(pull.get("base"))
        return WorkflowEvent(
            **common,
            pr_number=_pr_number(payload, pull),
            head_sha=_text(head.get("sha")),
            head_ref=_text(head.get("ref")) or environ.get("GITHUB_HEAD_REF", ""),
            base_ref=_text(base.get("ref")) or environ.get("GITHUB_BASE_REF", ""),
            base_sha=_text(base.get("sha")),
            is_fork=_is_fork(pull, repository),
            merged=pull.get("merged") is True,
        )
    after = _text(payload.get("after"))
    if set(after) == {"0"}:  # a deleted ref
        after = ""
    before = _text(payload.get("before"))
    return WorkflowEvent(
        **common,
        head_sha=after or environ.get("GITHUB_SHA", ""),
        base_sha="" if set(before) == {"0"} else before,
        head_ref=ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else "",
    )


def resolve_command(requested: str, event: WorkflowEvent) -> str:
    """The command to run: `requested` itself, or for `auto` the mapping of README.md#inputs-and-outputs.

    pull_request / pull_request_target: opened, synchronize(d), reopened, ready_for_review, labeled -> preview;
    closed -> teardown. push: a branch -> deploy on the default branch, build elsewhere (the payload's
    `repository.default_branch`; without it `main` or `master`); a tag -> build (deploy tags by setting
    `command: deploy`). schedule -> cleanup. workflow_dispatch -> deploy. Anything else is an InputError.
    """
    if requested != "auto":
        return requested
    name = event.event_name
    if not name:
        raise InputError(
            "command is auto but there is no event (not in a workflow run): set command, e.g. --command build"
        )
    if event.is_pull_request:
        if event.action in TEARDOWN_ACTIONS:
            return "teardown"
        if event.action in PREVIEW_ACTIONS:
            return "preview"
        raise InputError(
            f"command is auto and {name} action {event.action or '(none)'!r} has no mapping: set command "
            "(e.g. preview) or limit the workflow's `types:` to opened, synchronize, reopened and closed"
        )
    if name == "push":
        if event.is_tag:
            return "build"
        branch = event.ref.removeprefix("refs/heads/")
        defaults = (event.default_branch,) if event.default_branch else _FALLBACK_DEFAULT_BRANCHES
        return "deploy" if event.ref.startswith("refs/heads/") and branch in defaults else "build"
    if name == "schedule":
        return "cleanup"
    if name == "workflow_dispatch":
        return "deploy"
    raise InputError(
        f"command is auto but the {name!r} event has no mapping: set command to one of preview, deploy, build, "
        "teardown, cleanup or detect"
    )
