"""Finding the id of an agent made elsewhere (docs/sgp-api.md#agents-made-elsewhere).

An agent created in the UI, by sgpctl or by another CI, or one whose builds were archived, has no build that
`GET /v5/builds?agent_name=` lists, and a create with `agent_name` then answers 409. Its id is read from the
conflict's own answer when that names it, else from the build of one of its deployments.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sgp_action.errors import ApiError, ConflictError

if TYPE_CHECKING:
    from sgp_action.api.client import SGPClient

log = logging.getLogger(__name__)

#: How many of the agent's deployments, and how many distinct builds of them, are read at most.
DEPLOYMENT_SCAN_LIMIT = 50
BUILD_READ_LIMIT = 5
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_NAMED_ID = re.compile(r"agent[_ ]id\W{1,4}([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})", re.IGNORECASE)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def id_from_conflict(exc: ConflictError) -> str | None:
    """The agent id a 409 answer names: an `agent_id` field, `agent_id X` in its text, or one UUID; else None."""
    body = exc.body
    for holder in (body, body.get("detail") if isinstance(body, Mapping) else None):
        if isinstance(holder, Mapping):
            value = holder.get("agent_id")
            if isinstance(value, str) and _ID.match(value):
                return value
    text = f"{exc} {body if isinstance(body, str) else json.dumps(body, default=str)}"[:8000]
    named = _NAMED_ID.search(text)
    if named:
        return named.group(1).rstrip(".:")
    uuids = set(_UUID.findall(text))
    return uuids.pop() if len(uuids) == 1 else None


def id_from_deployments(client: SGPClient, agent_name: str) -> str | None:
    """The agent id of the build behind one of the agent's deployments (newest first); None when none tells."""
    found = client.list_deployments(agent_name=agent_name, sort_by="created_at", sort_order="desc")
    read: set[str] = set()
    for deployment in itertools.islice(found, DEPLOYMENT_SCAN_LIMIT):
        if deployment.agent_name not in (None, agent_name) or not deployment.build_id:
            continue
        if deployment.build_id in read:
            continue
        if len(read) >= BUILD_READ_LIMIT:
            break
        read.add(deployment.build_id)
        try:
            build = client.get_build(deployment.build_id)
        except ApiError as exc:  # an archived build may be gone for good: try the next deployment
            log.debug("build %s of deployment %s: %s", deployment.build_id, deployment.id, exc)
            continue
        if build.agent_id and build.agent_name in (None, agent_name):
            return str(build.agent_id)
    return None
