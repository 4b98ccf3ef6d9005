"""GitHub deployments: each preview and production deploy in the PR's timeline and on the repository's page.

GitHub only: Gitea and Forgejo have no Deployments API (docs/runner.md#github-gitea-and-forgejo), so nothing here
is called there; they keep the commit status and the comment. Every call is best effort: a token without
`deployments: write` (403) or a failing forge gives one warning, after which this run sends the forge no more
deployment calls, and the deploy goes on. Each group of calls (a deployment's start, its end, the teardown's
`inactive` statuses) has FORGE_BUDGET seconds; the start runs beside the build so that the build never waits for
the forge, and the end waits for the start at most that long. A cancelled run's end has only what its cancel budget
leaves: a deadline covering the wait for the start and the one request, or nothing sent when too little is left.

A deployment is created for a commit SHA with `required_contexts: []` (GitHub would otherwise refuse it while this
very workflow's check is pending) and `auto_merge: false` (a SHA cannot take a merge). Its `payload` names the agent,
so that a monorepo's teardown marks inactive only its own agent's deployments in the PR's shared environment.
"""

from __future__ import annotations

import json
import logging
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from sgp_action.api.deadlines import Background, call_with_deadline
from sgp_action.ci.forge import FORGE_BUDGET, FORGE_GRACE, ForgeClient
from sgp_action.errors import ActionError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The placeholders `deployment-url` may use; each value is percent-encoded into the URL.
URL_FIELDS = ("deployment_id", "label", "agent", "sha", "environment", "namespace", "release")
PREVIEW_ENVIRONMENT = "sgp-preview/{label}"
#: GitHub cuts a status description at 140 characters.
DESCRIPTION_MAX = 140
#: Less time than this is not worth a request: it would be cut before GitHub's answer could come back.
MIN_CALL_SECONDS = 0.25


def preview_environment(label: str) -> str:
    """The GitHub environment of a preview: `sgp-preview/pr-7`."""
    return PREVIEW_ENVIRONMENT.format(label=label)


def validate_url_template(template: str) -> str:
    """`template` when it is an http(s) URL whose placeholders are all in URL_FIELDS; ValueError saying what to fix.

    An empty template is valid (no URL is shown).
    """
    text = template.strip()
    if not text:
        return ""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc}; write placeholders as {{label}}, and a literal brace as {{{{ or }}}}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in URL_FIELDS:
            raise ValueError(f"unknown placeholder {{{name}}}; use {', '.join('{' + f + '}' for f in URL_FIELDS)}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format: write it as {{{name}}}")
    sample = render_url(text, dict.fromkeys(URL_FIELDS, "x"))
    split = urlsplit(sample)
    if split.scheme not in ("http", "https") or not split.netloc or any(c.isspace() for c in sample):
        raise ValueError(f"{text!r} is not an http(s) URL, like https://{{label}}.preview.example.com")
    return text


def render_url(template: str, values: Mapping[str, str]) -> str:
    """The URL of a validated template, each value percent-encoded (a server value cannot add a path or a query)."""
    if not template:
        return ""
    encoded = {name: quote(values.get(name, "") or "", safe="") for name in URL_FIELDS}
    return template.format(**encoded)


def final_state(result: str, exit_code: int) -> str:
    """The deployment status for how the run ended: success, failure (the build or deploy failed), else error."""
    if result == "success":
        return "success"
    return "failure" if exit_code == 1 else "error"


def _payload_agent(deployment: Mapping[str, Any]) -> str | None:
    payload = deployment.get("payload")
    if isinstance(payload, str):  # GitHub answers with the JSON object, or with the text it was given
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    agent = payload.get("agent") if isinstance(payload, dict) else None
    return agent if isinstance(agent, str) else None


@dataclass(frozen=True)
class DeploymentRequest:
    """One GitHub deployment to create: the commit, the environment, whether it is production, the agent."""

    sha: str
    environment: str
    production: bool
    agent: str
    log_url: str
    description: str


class GitHubDeployments:
    """The GitHub deployment calls of one run, with at most one warning (`warn`) for all of them."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str,
        *,
        warn: Callable[[str], None],
        budget: float = FORGE_BUDGET,
    ) -> None:
        self.api_url = api_url
        self.repository = repository
        self.budget = budget
        self._token = token
        self._warn = warn
        self._given_up = threading.Event()
        self._starting: Background[None] | None = None
        self._request: DeploymentRequest | None = None
        self.deployment_id = 0

    @property
    def given_up(self) -> bool:
        """True once a call failed (and was warned about): the run sends no more deployment calls."""
        return self._given_up.is_set()

    def _give_up(self, text: str) -> None:
        if not self._given_up.is_set():
            self._given_up.set()
            self._warn(text)

    def _call(self, func: Callable[[ForgeClient], T], seconds: float | None = None) -> T | None:
        """`func` with a fresh client whose calls share `budget`, or `seconds` all told; None (and the one warning)
        when it failed."""
        if self.given_up:
            return None
        budget = self.budget if seconds is None else seconds
        forge = ForgeClient(self.api_url, self.repository, self._token, budget=budget)
        # A stuck request (a name that does not resolve, a forge that drips) is left behind, never waited out.
        wait = budget + FORGE_GRACE if seconds is None else seconds
        call = call_with_deadline(lambda: func(forge), wait, name="sgp-forge-deployments")
        if not call.done:
            forge.abandon()
            self._give_up(
                f"the forge did not answer within {budget:.2g} s, so the GitHub deployment is not up to date; "
                "the deploy itself is unaffected"
            )
            return None
        forge.close()
        if isinstance(call.error, ActionError):
            self._give_up(self._explain(call.error))
            return None
        if call.error is not None:  # a bug here must not fail the deploy: the runner's log shows it
            log.warning("the GitHub deployment call failed", exc_info=call.error)
            return None
        return call.value

    @staticmethod
    def _explain(exc: ActionError) -> str:
        if getattr(exc, "status_code", None) == 403:
            return (
                "github-token may not write deployments (HTTP 403), so this deploy is not shown as a GitHub "
                "deployment; add `deployments: write` to the workflow's permissions (or leave it, nothing else "
                "depends on it)"
            )
        return f"the GitHub deployment was not updated: {exc}"

    def start(self, request: DeploymentRequest) -> None:
        """Create the deployment and set it `in_progress`, in a thread of its own (the build does not wait)."""
        self._request = request
        self._starting = Background(lambda: self._start(request), name="sgp-deployment").start()

    def _start(self, request: DeploymentRequest) -> None:
        def create(forge: ForgeClient) -> int:
            deployment_id = forge.create_deployment(
                {
                    "ref": request.sha,
                    "task": "deploy",
                    "environment": request.environment,
                    "description": request.description[:DESCRIPTION_MAX],
                    "auto_merge": False,
                    "required_contexts": [],
                    "transient_environment": not request.production,
                    "production_environment": request.production,
                    "payload": {"agent": request.agent},
                }
            )
            if deployment_id:
                forge.create_deployment_status(deployment_id, self._status("in_progress", request.description))
            return deployment_id

        self.deployment_id = self._call(create) or 0

    def _status(self, state: str, description: str, environment_url: str = "") -> dict[str, Any]:
        status: dict[str, Any] = {"state": state, "description": description[:DESCRIPTION_MAX]}
        if self._request is not None and self._request.log_url:
            status["log_url"] = self._request.log_url
        if environment_url:
            status["environment_url"] = environment_url
        if state == "success" and self._request is not None and self._request.production:
            status["auto_inactive"] = True  # the previous production deployment of the environment goes inactive
        return status

    def finish(self, state: str, description: str, environment_url: str = "", *, deadline: float | None = None) -> bool:
        """Set the final status (`success`, `failure`, `error`); False when there is no deployment to update.

        With `deadline` (a `time.monotonic()` value), everything, the wait for a start still in flight included,
        ends by then, and nothing is sent when too little time is left for an answer.
        """
        wait = self.budget + 2 * FORGE_GRACE if deadline is None else deadline - time.monotonic()
        if self._starting is not None and not self._starting.wait(wait):
            return False  # the start has not ended: its own call warns when it fails
        if not self.deployment_id:
            return False
        seconds = None if deadline is None else deadline - time.monotonic()
        if seconds is not None and seconds < MIN_CALL_SECONDS:
            log.info("no time was left to end the GitHub deployment %s: it still shows in_progress", self.deployment_id)
            return False
        status = self._status(state, description, environment_url)

        def post(forge: ForgeClient) -> bool:
            forge.create_deployment_status(self.deployment_id, status)
            return True

        return bool(self._call(post, seconds))

    def deactivate(self, previews: Iterable[tuple[str, str | None]], log_url: str) -> int:
        """Set `inactive` on the deployments of these previews (label, agent or None for any); how many were set.

        Each label's environment is listed once; a deployment made for another agent of the same PR is left alone.
        """
        wanted: dict[str, set[str | None]] = {}
        for label, agent in previews:
            wanted.setdefault(preview_environment(label), set()).add(agent)

        def mark(forge: ForgeClient) -> int:
            count = 0
            for environment, agents in wanted.items():
                for deployment in forge.list_deployments(environment):
                    agent = _payload_agent(deployment)
                    if None in agents or agent is None or agent in agents:
                        status = {"state": "inactive", "description": "preview deleted"}
                        if log_url:
                            status["log_url"] = log_url
                        forge.create_deployment_status(deployment["id"], status)
                        count += 1
            return count

        return (self._call(mark) or 0) if wanted else 0
