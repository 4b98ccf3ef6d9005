"""The doctor's server checks, through a view of the SGP API that can only read.

`ReadOnlySGP` offers only listing and getting, and the session under it (`sgp_action.api.readonly`) refuses every
method but GET and HEAD before anything is sent, so no code path of the doctor can create, cancel or delete on SGP.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sgp_action.api.models import Build, Deployment, Phase
from sgp_action.api.readonly import Probe, ReadOnlyClient
from sgp_action.ci.report import format_timestamp
from sgp_action.errors import ApiError
from sgp_action.run.checklist import Checklist, inert

if TYPE_CHECKING:
    from sgp_action.run.settings import Settings

#: How many of an agent's builds and deployments the doctor reads at most (newest shown first).
MAX_RECORDS = 200
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class ReadOnlySGP(ReadOnlyClient):
    """The reads the doctor needs: a raw GET for the probe, lists and gets of builds and deployments."""

    def __init__(self, settings: Settings, *, timeout: float = 15.0) -> None:
        super().__init__(settings.base_url, settings.api_key, settings.account_id, timeout=timeout)

    def builds(self, agent_name: str) -> list[Build]:
        """The agent's builds, newest first (at most MAX_RECORDS read)."""
        return _newest(self.client().list_builds(agent_name=agent_name))

    def deployments(self, agent_name: str) -> list[Deployment]:
        """The agent's deployments, newest first (at most MAX_RECORDS read)."""
        return _newest(self.client().list_deployments(agent_name=agent_name))

    def build(self, build_id: str) -> Build:
        """One build."""
        return self.client().get_build(build_id)


def _newest(records: Iterable[Any]) -> list[Any]:
    found = list(itertools.islice(records, MAX_RECORDS))
    return sorted(found, key=lambda r: format_timestamp(r.created_at), reverse=True)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _html_title(body: bytes) -> str:

    match = _TITLE.search(body[:65536])
    return inert(match.group(1).decode("utf-8", "replace"), 60) if match else ""


def _is_html(response: Probe) -> bool:
    kind = response.content_type.lower()
    return "html" in kind or response.content[:512].lstrip().lower().startswith((b"<!doctype", b"<html"))


def check_server(checks: Checklist, sgp: ReadOnlySGP) -> bool:
    """base-url, api-key, account-id, and listing builds and deployments; True when all of them hold."""

    names = ("base-url", "api-key", "account-id", "list builds", "list deployments")
    missing = [n for n, v in (("api-key", sgp.api_key), ("account-id", sgp.account_id)) if not v]
    if missing:
        checks.fail(
            "credentials",
            f"{' and '.join(missing)} not set",
            "pass them from secrets/variables, e.g. api-key: ${{ secrets.SGP_API_KEY }}",
            server=False,
        )
        for name in names:
            checks.skip(name, "needs api-key and account-id")
        return False
    host = _host(sgp.base_url)
    response = sgp.probe("/v5/builds", {"limit": 1})
    if response.tls:
        found = f"TLS with {host} failed ({response.failure})"
        fix = "use the https address SGP gave you; a proxy or self-signed certificate in between is not trusted"
        checks.fail("base-url", found, fix, server=True)
    elif response.failure:
        found = f"cannot reach {host} ({response.failure})"
        fix = "check base-url (scheme, host, port) and that this runner can reach it (proxy, firewall, VPN)"
        checks.fail("base-url", found, fix, server=True)
    if response.failure or not _server_answer(checks, sgp, response):
        for name in names[1:]:
            checks.skip(name, "needs a base-url that answers like SGP")
        return False
    status = response.status
    detail = inert(response.detail, 120)
    if status == 401:
        checks.fail("api-key", f"refused (401: {detail})", "set api-key to a valid SGP API key", server=True)
        for name in names[2:]:
            checks.skip(name, "needs an accepted api-key")
        return False
    checks.ok("api-key", "accepted")
    if status == 403:
        checks.fail(
            "account-id",
            f"{inert(sgp.account_id)!r} refused for this key (403: {detail})",
            "set account-id to an account this key may use (the SGP UI shows your accounts' ids)",
            server=True,
        )
        for name in names[3:]:
            checks.skip(name, "needs a valid account-id")
        return False
    if status >= 300:
        checks.fail("list builds", f"GET /v5/builds answered {status} ({detail})", "see the answer", server=True)
        checks.skip("list deployments", "needs the builds list")
        return False
    checks.ok("account-id", f"{inert(sgp.account_id)!r} selected and valid")
    checks.ok("list builds", "GET /v5/builds answers a list")
    listed = sgp.probe("/v5/agentex/deployments", {"limit": 1})
    if listed.failure or listed.status >= 400:
        why = listed.failure or f"HTTP {listed.status}: {inert(listed.detail, 120)}"
        checks.fail(
            "list deployments",
            f"GET /v5/agentex/deployments failed ({why})",
            "give the key access to the account's deployments",
            server=True,
        )
        return False
    checks.ok("list deployments", "GET /v5/agentex/deployments answers a list")
    return True


def _server_answer(checks: Checklist, sgp: ReadOnlySGP, response: Probe) -> bool:
    """Judge whether base-url answers like SGP (JSON, no redirect, no HTML page); record the base-url line."""

    status, host = response.status, _host(sgp.base_url)
    fix_url = "set base-url to the SGP API's address (e.g. https://api.egp.scale.com), not a web page or a proxy"
    if 300 <= status < 400:
        where = _host(response.location) or "an unnamed place"
        checks.fail(
            "base-url",
            f"{host} redirects ({status}) to {inert(where, 80)}",
            "set base-url to the address it redirects to: the action follows no redirect, so the key never travels",
            server=True,
        )
        return False
    if _is_html(response):
        title = _html_title(response.content)
        said = f", titled {title!r}" if title else ""
        checks.fail("base-url", f"{host} answers an HTML page ({status}{said}), not the SGP API", fix_url, server=True)
        return False
    try:
        response.json()
    except ValueError:
        checks.fail("base-url", f"{host} answers {status} with a body that is not JSON", fix_url, server=True)
        return False
    if status == 404:
        checks.fail("base-url", f"{host} has no /v5/builds (404)", "check base-url's path prefix", server=True)
        return False
    if status >= 500 or status == 429:
        checks.fail("base-url", f"{host} answers {status}", "try again later; the server is not well", server=True)
        return False
    secure = "TLS verified, " if sgp.base_url.startswith("https://") else ""
    checks.ok("base-url", f"{host} reachable, {secure}answers like SGP (JSON)")
    return True


def check_agent(checks: Checklist, sgp: ReadOnlySGP, agent: str) -> None:
    """Does the manifest's agent exist, its latest builds, its active deployments and previews."""

    try:
        builds = sgp.builds(agent)
        deployments = sgp.deployments(agent)
    except ApiError as exc:
        checks.fail(
            "agent", f"cannot list {agent}'s builds or deployments: {inert(exc, 200)}", "see the answer", server=True
        )
        return
    ids = sorted({b.agent_id for b in builds if b.agent_id})
    if builds:
        checks.ok("agent", f"{agent} exists (agent_id {', '.join(ids) or 'not shown'})")
    elif deployments:
        found = _agent_id_from(sgp, deployments)
        how = f"; its agent_id {found} shows through its deployments" if found else ""
        checks.warn(
            "agent",
            f"{agent} has deployments but no build lists it (made elsewhere, or its builds were archived){how}",
            "if a build then fails with a 409 on the agent name, set the agent-id input",
        )
    else:
        checks.ok("agent", f"{agent} does not exist yet: the first build creates it")
    shown = "; ".join(f"{b.id} {inert(b.status, 20)} {format_timestamp(b.created_at)}".strip() for b in builds[:3])
    checks.ok("latest builds", shown or "none")
    active = [d for d in deployments if d.phase is not Phase.FAILED]
    lines = []
    for dep in active[:10]:
        kind = f"preview {inert(dep.preview_label or '(no label)', 40)}" if dep.is_preview else "production"
        expiry = f", expires {format_timestamp(dep.expires_at)}" if dep.expires_at else ""
        lines.append(f"{kind}: {dep.id} {inert(dep.status, 20)}{expiry}")
    more = f"; {len(active) - 10} more" if len(active) > 10 else ""
    checks.ok("active deployments", "; ".join(lines) + more if lines else "none")


def _agent_id_from(sgp: ReadOnlySGP, deployments: list[Deployment]) -> str:
    for dep in deployments[:5]:
        if dep.build_id:
            try:
                agent_id = sgp.build(dep.build_id).agent_id
            except ApiError:
                continue
            if agent_id:
                return agent_id
    return ""
