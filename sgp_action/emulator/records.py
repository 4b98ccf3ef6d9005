"""The emulator's records and how the API shows them in each dialect (docs/sgp-api.md#the-two-dialects)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sgp_action.emulator.deploys import Step
from sgp_action.emulator.variants import stamp, status_word

DIALECTS = ("current", "legacy")
MAX_LIST_LIMIT = 10000


class HttpError(Exception):
    """An API error answer: status code plus the `detail` of the JSON body."""

    def __init__(self, status: int, detail: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def query_error(name: str, message: str, value: Any) -> HttpError:
    """FastAPI's 422 shape for a bad query parameter (docs/sgp-api.md#error-body-shape: the only documented error
    body)."""
    return HttpError(422, [{"loc": ["query", name], "msg": message, "type": "value_error", "input": value}])


@dataclass
class BuildRecord:
    """One build as the emulator stores it; `progress` in the store derives its status from the clock."""

    id: str
    seq: int
    account_id: str
    agent_name: str
    agent_id: str
    image_name: str
    image_tag: str
    image_url: str
    created_at: datetime
    created_mono: float
    created_by: dict[str, str]
    cloud_provider_build_id: str
    source: dict[str, str | bool | None]
    working_tree_hash: str | None
    archive_size: int = 0
    registered: bool = False  # an image_url registration: successful at once
    archived: bool = False  # made elsewhere and archived: no list shows it, GET by id still does
    lines: list[tuple[float, str]] | None = None  # (seconds after creation, text); None while the archive is read
    succeeds: bool = True
    queue_seconds: float = 0.0
    finish_seconds: float = 0.0
    cancel_at: float | None = None
    cancel_seconds: float = 0.5


@dataclass
class DeployRecord:
    """One deployment; its status, events and log lines come from `timeline` and the clock."""

    id: str
    seq: int
    account_id: str
    agent_name: str
    created_at: datetime
    created_mono: float
    created_by: dict[str, str]
    manifest_file: str
    environment_config: str
    namespace: str
    build_id: str | None
    preview: bool
    preview_label: str | None
    expires_at: datetime | None
    helm_release_name: str
    timeline: list[Step]
    duration: float
    final_status: str | None = None  # DELETED / SUPERSEDED / CANCELLED, set by a request or by expiry
    frozen_at: float | None = None  # seconds after creation at which the timeline stopped
    extra_events: list[tuple[float, str, str, str]] = field(default_factory=list)
    ever_healthy: bool = False


def build_view(
    rec: BuildRecord,
    status: str,
    start: float | None,
    end: float | None,
    dialect: str,
    variants: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A build as `GET /v5/builds/{id}` shows it in `dialect` under the active server `variants`."""

    def when(offset: float | None) -> Any:
        return stamp(rec.created_at + timedelta(seconds=offset), variants) if offset is not None else None

    body: dict[str, Any] = {
        "id": rec.id,
        "object": "agentex_cloud_build",
        "account_id": rec.account_id,
        "agent_name": rec.agent_name,
        "agent_id": rec.agent_id,
        "build_status": status,
        "cloud_provider_build_id": rec.cloud_provider_build_id,
        "created_at": stamp(rec.created_at, variants, epoch=True),
        "created_by": rec.created_by,
        "image_name": rec.image_name,
        "image_tag": rec.image_tag,
        # The current API promises image_url only once the build is complete; the oldest one always had it.
        "image_url": rec.image_url if status == "success" or dialect == "legacy" else None,
        "build_start_time": when(start),
        "build_end_time": when(end),
        **rec.source,
        "working_tree_hash": rec.working_tree_hash,
    }
    if dialect == "legacy":
        body = {("build_id" if k == "id" else "status" if k == "build_status" else k): v for k, v in body.items()}
    return body


def deploy_view(
    rec: DeployRecord,
    status: str,
    events: list[dict[str, Any]],
    dialect: str,
    variants: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A deployment as `GET /v5/agentex/deployments/{id}` shows it in `dialect` under the active `variants`."""
    shown = status.lower() if dialect == "legacy" else status.upper()
    return {
        "id": rec.id,
        "object": "agentex_cloud_deploy",
        "account_id": rec.account_id,
        "created_at": stamp(rec.created_at, variants, epoch=True),
        "created_by": rec.created_by,
        "manifest_file": rec.manifest_file,
        "environment_config": rec.environment_config,
        "namespace": rec.namespace,
        "status": status_word(shown, variants),
        "build_id": rec.build_id,
        "deploy_events": events,
        "expires_at": stamp(rec.expires_at, variants) if rec.expires_at else None,
        "helm_release_name": rec.helm_release_name,
        "preview_label": rec.preview_label,
    }


T = TypeVar("T")


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high] (default when absent), or FastAPI's 422."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise query_error(name, "Input should be a valid integer", raw) from None
    if not low <= value <= high:
        raise query_error(name, f"Input should be between {low} and {high}", raw)
    return value


def paginate(
    records: Sequence[T],
    query: Mapping[str, str],
    ident: Callable[[T], str],
    sort_keys: Mapping[str, Callable[[T], Any]],
    render: Callable[[T], dict[str, Any]],
    variants: frozenset[str] = frozenset(),
    has_more_key: str = "absent",
) -> dict[str, Any]:
    """One cursor page (docs/sgp-api.md#paging): sort, then cut at `starting_after` / `ending_before`.

    Under `no-has-more` the page has no `has_more` when `has_more_key` is "absent" (null when "null") and a
    `next_cursor`; under `no-sort` the sort parameters are refused and the order is by id.
    """
    limit = int_param(query, "limit", 100, 1, MAX_LIST_LIMIT)
    if "no-sort" in variants:
        for name in ("sort_by", "sort_order"):
            if name in query:
                raise query_error(name, "Extra inputs are not permitted", query[name])
        query = {**query, "sort_by": "id", "sort_order": "asc"}
    order = query.get("sort_order") or "asc"
    if order not in ("asc", "desc"):
        raise query_error("sort_order", "Input should be 'asc' or 'desc'", order)
    sort_by = query.get("sort_by") or "created_at"
    if sort_by not in sort_keys:
        raise query_error("sort_by", f"Input should be one of {', '.join(sorted(sort_keys))}", sort_by)
    ordered = sorted(records, key=sort_keys[sort_by], reverse=order == "desc")
    ids = [ident(r) for r in ordered]
    after, before = query.get("starting_after"), query.get("ending_before")
    if after and before:
        raise HttpError(400, "send starting_after or ending_before, not both")
    if after:
        if after not in ids:
            raise HttpError(400, f"starting_after: no item with id {after!r} in this list")
        rest = ordered[ids.index(after) + 1 :]
        page, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            raise HttpError(400, f"ending_before: no item with id {before!r} in this list")
        rest = ordered[: ids.index(before)]
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = ordered[:limit], len(ordered) > limit
    body: dict[str, Any] = {
        "object": "list",
        "items": [render(r) for r in page],
        "has_more": has_more,
        "total": len(ordered),
        "limit": limit,
    }
    if "no-has-more" in variants:
        if has_more_key == "absent":
            del body["has_more"]
        else:
            body["has_more"] = None
        body["next_cursor"] = ident(page[-1]) if page else None
    return body
