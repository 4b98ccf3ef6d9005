"""Typed, read-only views of the SGP Build and Deploy API's records.

Every `from_api` accepts both API generations (docs/sgp-api.md#the-two-dialects): `id` or `build_id`
(docs/sgp-api.md#build-id-field), `build_status` or
`status` (docs/sgp-api.md#build-status-field), status words in any case (docs/sgp-api.md#deployment-status-spellings).
Build status words are kept lowercase; deployment status words are read as the platform page's words (`status`,
with the server's own in `server_status`); `phase` classifies them. Unknown
fields are ignored and the whole record stays available in `raw`.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sgp_action.api.times import parse_datetime
from sgp_action.errors import BadAnswerError

logger = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where a build or deployment stands: still moving, done well, or done badly."""

    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# docs/sgp-api.md#build-status-words: `deleting` / `delete_failed` concern deleting a build, which never leads back to a
# usable build, so a poller waiting for a build treats them as failures. `unknown` and unlisted words keep polling
# (docs/sgp-api.md#unknown-build-status).
BUILD_SUCCEEDED = frozenset({"success"})
BUILD_FAILED = frozenset({"failed", "cancelled", "timed_out", "error", "delete_failed", "deleting"})

# docs/sgp-api.md#deployment-statuses: the deploy status is a free string seen in several spellings, so each word the
# action knows is read as one of the platform page's words (`running` is under way, NOT success). The key is the
# server's word lowercased with `-` and spaces as `_`.
DEPLOY_WORDS: Mapping[str, str] = {
    **dict.fromkeys(
        ("healthy", "completed", "complete", "succeeded", "success", "ready", "active", "deployed"), "healthy"
    ),
    **dict.fromkeys(("pending", "queued", "scheduled", "waiting", "created"), "pending"),
    **dict.fromkeys(
        (
            "in_progress",
            "inprogress",
            "running",
            "deploying",
            "starting",
            "creating",
            "updating",
            "progressing",
            "provisioning",
            "rolling_out",
        ),
        "in_progress",
    ),
    **dict.fromkeys(
        (
            "failed",
            "failure",
            "error",
            "errored",
            "crashloopbackoff",
            "imagepullbackoff",
            "errimagepull",
            "backoff",
            "timed_out",
            "timeout",
            "unhealthy",
        ),
        "failed",
    ),
    **dict.fromkeys(("cancelled", "canceled"), "cancelled"),
    **dict.fromkeys(("deleted", "deleting", "expired"), "deleted"),
    **dict.fromkeys(("superseded", "replaced"), "superseded"),
}
DEPLOY_SUCCEEDED = frozenset({"healthy"})
DEPLOY_FAILED = frozenset({"failed", "cancelled", "deleted", "superseded"})


def deploy_status_word(status: str) -> str | None:
    """The platform page's word for a deployment status in any spelling and case; None for a word never seen."""
    return DEPLOY_WORDS.get(re.sub(r"[\s-]+", "_", status.strip().lower()))


_Reader = TypeVar("_Reader", bound=Callable[..., Any])


class _WrongType(Exception):
    """A field of a record holds a JSON type this action cannot use; `reading` names the record."""


def _shown(value: Any) -> str:
    """A value's JSON type and a short, inert sample of it, for a message."""
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
    return f"{kind} ({str(value)[:80]!r})"


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a wrong type met while reading `what` into BadAnswerError (exit 3) saying what the server sent."""
    try:
        yield
    except _WrongType as exc:
        raise BadAnswerError(
            f"the server sent {what} this action cannot read: {exc}; check that base-url points at the SGP API"
        ) from None


def _text(data: Mapping[str, Any], *keys: str) -> str | None:
    """The first key that holds a non-empty value, as a string; an object or array there is a wrong type."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, (dict, list)):
            raise _WrongType(f"{key!r} is {_shown(value)}, not a string")
        if value is not None and value != "":
            return str(value)
    return None


def _array(data: Mapping[str, Any], key: str, *kinds: type, skip_others: bool = False) -> list[Any]:
    """`data[key]` as a list of items of `kinds` (absent or null is empty); other items are skipped or refused."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _WrongType(f"{key!r} is {_shown(value)}, not an array")
    for index, item in enumerate(value):
        if not isinstance(item, kinds) and not skip_others:
            raise _WrongType(f"{key}[{index}] is {_shown(item)}")
    return [item for item in value if isinstance(item, kinds)]


def _flag(data: Mapping[str, Any], key: str) -> bool:
    """`data[key]` as a boolean (absent or null is false); the string "false" is not taken as true."""
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _WrongType(f"{key!r} is {_shown(value)}, not a boolean")


def manifest_agent_name(text: Any) -> str | None:
    """`agent.name` of the manifest YAML a deployment record echoes back (docs/sgp-api.md#the-deployment-record), else
    None.

    The record carries no agent name of its own, and previews of several agents may share a label (a monorepo PR),
    so this is how replace, teardown and cleanup tell them apart.
    """
    return _agent_name_of(text) if isinstance(text, str) and text.strip() else None


@functools.lru_cache(maxsize=256)
def _agent_name_of(text: str) -> str | None:
    # Cached: a sweep reads thousands of records, and the deployments of one agent echo the same manifest.
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    agent = data.get("agent") if isinstance(data, dict) else None
    name = agent.get("name") if isinstance(agent, dict) else None
    return name if isinstance(name, str) and name else None


def _reads(what: str) -> Callable[[_Reader], _Reader]:
    """Decorate a `from_api`: any wrong type met inside it becomes one BadAnswerError naming `what`."""

    def decorate(function: _Reader) -> _Reader:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with reading(what):
                return function(*args, **kwargs)

        return cast(_Reader, wrapper)

    return decorate


def _require_mapping(data: Any, what: str = "it") -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _WrongType(f"{what} is {_shown(data)}, not an object")
    return data


def _status(data: Mapping[str, Any], *keys: str) -> str:
    return (_text(data, *keys) or "unknown").strip().lower()


@dataclass(frozen=True)
class Build:
    """An `AgentexCloudBuild` (docs/sgp-api.md#the-build-record) in either API generation."""

    id: str
    status: str
    agent_name: str | None = None
    agent_id: str | None = None
    image_name: str | None = None
    image_tag: str | None = None
    image_url: str | None = None
    working_tree_hash: str | None = None
    source_commit: str | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    @_reads("a build record")
    def from_api(cls, data: Mapping[str, Any]) -> Build:
        """Read a build record; raises BadAnswerError when it has no id or a field of the wrong type."""
        data = _require_mapping(data)
        build_id = _text(data, "id", "build_id")
        if build_id is None:
            raise _WrongType(f"it has no id (its fields: {sorted(data)[:20]})")
        return cls(
            id=build_id,
            status=_status(data, "build_status", "status"),
            agent_name=_text(data, "agent_name"),
            agent_id=_text(data, "agent_id"),
            image_name=_text(data, "image_name"),
            image_tag=_text(data, "image_tag"),
            image_url=_text(data, "image_url"),
            working_tree_hash=_text(data, "working_tree_hash"),
            source_commit=_text(data, "source_commit"),
            created_at=parse_datetime(data.get("created_at")),
            raw=dict(data),
        )

    @property
    def phase(self) -> Phase:
        """SUCCEEDED for `success`, FAILED for the terminal failures, IN_PROGRESS for anything else."""
        if self.status in BUILD_SUCCEEDED:
            return Phase.SUCCEEDED
        if self.status in BUILD_FAILED:
            return Phase.FAILED
        return Phase.IN_PROGRESS


@dataclass(frozen=True)
class DeployEvent:
    """One Kubernetes event of a deployment (`deploy_events` items, docs/sgp-api.md#the-deployment-record)."""

    type: str | None = None
    reason: str | None = None
    message: str | None = None
    timestamp: datetime | None = None

    @classmethod
    @_reads("a deployment event")
    def from_api(cls, data: Mapping[str, Any]) -> DeployEvent:
        """Read one event; every field is optional."""
        data = _require_mapping(data)
        return cls(
            type=_text(data, "type"),
            reason=_text(data, "reason"),
            message=_text(data, "message"),
            timestamp=parse_datetime(data.get("timestamp")),
        )


@dataclass(frozen=True)
class Deployment:
    """An `AgentexCloudDeploy` (docs/sgp-api.md#the-deployment-record)."""

    id: str
    status: str
    build_id: str | None = None
    preview_label: str | None = None
    expires_at: datetime | None = None
    helm_release_name: str | None = None
    namespace: str | None = None
    created_at: datetime | None = None
    events: tuple[DeployEvent, ...] = ()
    agent_name: str | None = None
    server_status: str = ""  # the server's own word, lowercased (`status` is the normalised one)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    @_reads("a deployment record")
    def from_api(cls, data: Mapping[str, Any]) -> Deployment:
        """Read a deployment record; raises BadAnswerError when it has no id or a field of the wrong type."""
        data = _require_mapping(data)
        deployment_id = _text(data, "id", "deployment_id", "deploy_id")
        if deployment_id is None:
            raise _WrongType(f"it has no id (its fields: {sorted(data)[:20]})")
        events = _array(
            data, "deploy_events" if data.get("deploy_events") is not None else "events", Mapping, skip_others=True
        )
        said = _status(data, "status", "deploy_status")
        return cls(
            id=deployment_id,
            status=deploy_status_word(said) or said,
            server_status=said,
            build_id=_text(data, "build_id"),
            preview_label=_text(data, "preview_label"),
            expires_at=parse_datetime(data.get("expires_at")),
            helm_release_name=_text(data, "helm_release_name"),
            namespace=_text(data, "namespace"),
            created_at=parse_datetime(data.get("created_at")),
            events=tuple(DeployEvent.from_api(e) for e in events),
            agent_name=_text(data, "agent_name") or manifest_agent_name(data.get("manifest_file")),
            raw=dict(data),
        )

    @property
    def status_known(self) -> bool:
        """False for a status word this action has never seen (it is polled as under way)."""
        return deploy_status_word(self.server_status or self.status) is not None

    @property
    def status_shown(self) -> str:
        """The status for a message: the normalised word, and the server's own when it differs."""
        if self.server_status and self.server_status != self.status:
            return f"{self.status} (the server said {self.server_status!r})"
        return self.status or "unknown"

    @property
    def phase(self) -> Phase:
        """SUCCEEDED for healthy and its synonyms, FAILED for the terminal failures, IN_PROGRESS for anything else."""
        if self.status in DEPLOY_SUCCEEDED:
            return Phase.SUCCEEDED
        if self.status in DEPLOY_FAILED:
            return Phase.FAILED
        return Phase.IN_PROGRESS

    @property
    def is_preview(self) -> bool:
        """True for a preview: production records carry neither a label nor an expiry
        (docs/sgp-api.md#preview-only-fields)."""
        return self.preview_label is not None or self.expires_at is not None


@dataclass(frozen=True)
class LogLine:
    """One structured deployment log line (docs/sgp-api.md#deployment-logs)."""

    id: str
    message: str
    log_level: str | None = None
    timestamp: datetime | None = None

    @classmethod
    @_reads("a deployment log line")
    def from_api(cls, data: Mapping[str, Any] | str) -> LogLine:
        """Read one line; a bare string (as the docs' `jq -r '.lines[]'` example suggests) is a message without id."""
        if isinstance(data, str):
            return cls(id="", message=data)
        data = _require_mapping(data)
        return cls(
            id=_text(data, "id") or "",
            message=_text(data, "message", "line") or "",
            log_level=_text(data, "log_level", "level"),
            timestamp=parse_datetime(data.get("timestamp")),
        )


@dataclass(frozen=True)
class LogPage:
    """One page of deployment logs. `next_cursor` is what to send next: never empty once a cursor was known
    (docs/sgp-api.md#deployment-log-cursor)."""

    lines: tuple[LogLine, ...]
    next_cursor: str
    has_more: bool

    @classmethod
    @_reads("a deployment logs answer")
    def from_api(cls, data: Mapping[str, Any], *, previous_cursor: str = "") -> LogPage:
        """Read a logs response; an empty `next_cursor` keeps `previous_cursor` so the log is never replayed."""
        data = _require_mapping(data)
        lines = _array(data, "lines", Mapping, str)
        return cls(
            lines=tuple(LogLine.from_api(line) for line in lines),
            next_cursor=_text(data, "next_cursor") or previous_cursor,
            has_more=_flag(data, "has_more"),
        )


@dataclass(frozen=True)
class UndeployedAgent:
    """An element of `GET /v5/builds/undeployed` (docs/sgp-api.md#undeployed-builds)."""

    agent_name: str
    latest_build: Build
    total_builds: int

    @classmethod
    @_reads("an undeployed-agent record")
    def from_api(cls, data: Mapping[str, Any]) -> UndeployedAgent:
        """Read one element of the bare array (docs/sgp-api.md#undeployed-is-a-bare-array)."""
        data = _require_mapping(data)
        latest = Build.from_api(_require_mapping(data.get("latest_build"), "'latest_build'"))
        try:
            total = int(data.get("total_builds") or 0)
        except (TypeError, ValueError):
            total = 0
        return cls(
            agent_name=_text(data, "agent_name") or latest.agent_name or "", latest_build=latest, total_builds=total
        )
