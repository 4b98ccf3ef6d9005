"""The SGP Agentex Cloud Build and Deploy API client: every endpoint of docs/sgp-api.md#builds and
docs/sgp-api.md#deployments.

This module family (`client`, `logstream`, `transport`, `answers`, `sse`, `models`) is the only code that talks
HTTP. Calls return the typed records of `sgp_action.api.models` and raise `sgp_action.errors.ApiError` subclasses;
the retry policy is described in `sgp_action.api.transport`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from sgp_action.api.answers import json_answer
from sgp_action.api.logstream import LogStream
from sgp_action.api.models import Build, Deployment, LogPage
from sgp_action.api.paging import about as _about
from sgp_action.api.paging import names_sort, sort_by_created_at, walk_pages
from sgp_action.api.recorder import Recorder
from sgp_action.api.times import format_datetime
from sgp_action.api.transport import Transport
from sgp_action.errors import (
    ConflictError,
    ContextError,
    InputError,
    ValidationError,
)

logger = logging.getLogger(__name__)
_Record = TypeVar("_Record")

# docs/sgp-api.md#one-image-source-and-the-size-limit: the context archive must be at most 500 MB
MAX_ARCHIVE_BYTES = 500 * 1024 * 1024
SOURCE_FIELDS = ("source_commit", "source_ref", "source_repo", "source_subpath", "source_dirty")


def _form_value(value: str | bool) -> str:
    """Multipart text: booleans as `true`/`false` as the SDK sends them (docs/sgp-api.md#booleans-in-multipart), never
    Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SGPClient:
    """The SGP Build and Deploy API, with auth, timeouts, retries and error mapping."""

    def __init__(self, transport: Transport) -> None:
        """A client over `transport` (its auth, timeouts, retries and recorder); `for_url` builds both for the common
        case."""
        self.transport = transport
        #: Set once a list refused `sort_by` / `sort_order` (docs/sgp-api.md#sorting-parameters): from then on, lists
        #: are asked for without them and ordered here, for the rest of the run.
        self.sort_refused = False

    @classmethod
    def for_url(
        cls, base_url: str, api_key: str, account_id: str, *, recorder: Recorder | None = None, **options: Any
    ) -> SGPClient:
        """A client for `base_url` (it may carry a path prefix: `http://127.0.0.1:5003/public`), the key and account;
        `options` are `Transport`'s (timeouts, retries, session, `sleep` as a seam for tests); `recorder` writes every
        request and answer (`debug: true`, sgp_action.api.recorder)."""
        transport = Transport(base_url, api_key, account_id, **options)
        transport.recorder = recorder
        return cls(transport)

    def __repr__(self) -> str:
        return f"SGPClient({self.transport!r})"

    def close(self) -> None:
        """Release the HTTP session (when the client created it)."""
        self.transport.close()

    def __enter__(self) -> SGPClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> Any:
        """One call's decoded JSON; reads and deletes are idempotent unless said otherwise, POSTs only when said."""
        if idempotent is None:
            idempotent = method in ("GET", "DELETE")
        response = self.transport.request(method, path, idempotent=idempotent, **kwargs)
        try:
            return json_answer(method, path, response)
        finally:
            response.close()

    def _records(
        self, reader: Callable[[Mapping[str, Any]], _Record], path: str, params: Mapping[str, Any]
    ) -> Iterator[_Record]:
        """Every item of a paged list, read by `reader`; an unreadable one names the endpoint.

        A server that refuses the sort parameters (400/422 naming one, docs/sgp-api.md#sorting-parameters) is asked
        once more without them, and the whole list is ordered here by `created_at`; the client remembers it.
        """
        order = params.get("sort_order")
        sorted_here = params.get("sort_by") is not None or order is not None
        if sorted_here and not self.sort_refused:
            items = self._walk(reader, path, params)
            try:
                first = next(items, None)
            except ValidationError as exc:
                if not names_sort(exc):
                    raise
                self.sort_refused = True
                logger.info("GET %s refused the sort parameters (%s); ordering lists here from now on", path, exc)
            else:
                if first is not None:
                    yield first
                    yield from items
                return
        if not sorted_here:
            yield from self._walk(reader, path, params)
            return
        unsorted = {key: value for key, value in params.items() if key not in ("sort_by", "sort_order")}
        unsorted["limit"] = max(int(unsorted.get("limit") or 0), 100)  # the whole list is read: full pages
        records = list(self._walk(reader, path, unsorted))
        yield from sort_by_created_at(records, descending=order == "desc")

    def _walk(
        self, reader: Callable[[Mapping[str, Any]], _Record], path: str, params: Mapping[str, Any]
    ) -> Iterator[_Record]:
        for item in walk_pages(lambda query: self._call("GET", path, params=query), path, params):
            with _about("GET", path):
                yield reader(item)

    # --- builds (docs/sgp-api.md#builds) --------------------------------------------------------

    def create_build(
        self,
        *,
        image_name: str,
        archive_path: Path | None = None,
        image_url: str | None = None,
        image_tag: str | None = None,
        agent_name: str | None = None,
        agent_id: str | None = None,
        build_args: Mapping[str, str] | None = None,
        platform: str | None = None,
        source: Mapping[str, str | bool | None] | None = None,
        working_tree_hash: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Build:
        """`POST /v5/builds`: multipart, the archive streamed from its file; `progress(bytes_sent, total)`.

        Sends exactly one image source and one agent identifier (docs/sgp-api.md#agent-name-creates-an-agent,
        docs/sgp-api.md#one-image-source-and-the-size-limit). Not retried after the request may have
        reached the server (docs/sgp-api.md#creates-are-not-idempotent): look for the build by `working_tree_hash`
        before creating again.
        """
        if not image_name:
            raise InputError("create_build needs an image_name")
        if (archive_path is None) == (image_url is None):
            raise InputError("create_build needs exactly one of archive_path and image_url")
        if (agent_name is None) == (agent_id is None):
            raise InputError("create_build needs exactly one of agent_name and agent_id")
        unknown = sorted(set(source or {}) - set(SOURCE_FIELDS))
        if unknown:
            raise InputError(f"create_build: unknown source fields {unknown}; use {list(SOURCE_FIELDS)}")
        fields: list[tuple[str, Any]] = []
        texts: dict[str, str | bool | None] = {
            "image_name": image_name,
            "image_tag": image_tag,
            "agent_name": agent_name,
            "agent_id": agent_id,
            "image_url": image_url,
            "platform": platform,
            "working_tree_hash": working_tree_hash,
            **{key: (source or {}).get(key) for key in SOURCE_FIELDS},
        }
        if build_args:
            # one JSON string (docs/sgp-api.md#build-args-are-one-json-string)
            texts["build_args"] = json.dumps(dict(build_args), separators=(",", ":"))
        fields.extend((name, _form_value(value)) for name, value in texts.items() if value is not None)

        with contextlib.ExitStack() as stack:
            handle = None
            if archive_path is not None:
                handle = stack.enter_context(self._open_archive(Path(archive_path)))

            def body() -> tuple[Any, str]:
                parts = list(fields)
                if handle is not None:
                    handle.seek(0)  # a retried attempt sends the file from its start
                    parts.append(("context_archive", ("context.tar.gz", handle, "application/gzip")))
                encoder = MultipartEncoder(fields=parts)
                if progress is None:
                    return encoder, encoder.content_type
                monitor = MultipartEncoderMonitor(encoder, lambda m: progress(m.bytes_read, m.len))
                return monitor, monitor.content_type

            data = self._call("POST", "/v5/builds", idempotent=False, body=body)
        with _about("POST", "/v5/builds"):
            return Build.from_api(data)

    @staticmethod
    @contextlib.contextmanager
    def _open_archive(path: Path) -> Iterator[Any]:
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except OSError as exc:
            raise ContextError(f"cannot read the build context archive {path}: {exc.strerror or exc}") from exc
        with handle:
            if size == 0:
                raise ContextError(f"the build context archive {path} is empty")
            if size > MAX_ARCHIVE_BYTES:
                raise ContextError(
                    f"the build context archive {path} is {size / 2**20:.1f} MiB, over the API's 500 MB limit; "
                    "exclude more files with .dockerignore"
                )
            yield handle

    def get_build(self, build_id: str) -> Build:
        """`GET /v5/builds/{id}`."""
        path = f"/v5/builds/{_segment(build_id)}"
        with _about("GET", path):
            return Build.from_api(self._call("GET", path))

    def list_builds(
        self,
        *,
        agent_name: str | None = None,
        source_commit: str | None = None,
        working_tree_hash: str | None = None,
        limit: int = 100,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> Iterator[Build]:
        """`GET /v5/builds`, every page. Older servers ignore unknown filters
        (docs/sgp-api.md#older-servers-ignore-unknown-filters): re-check them on the items."""
        params = {
            "agent_name": agent_name,
            "source_commit": source_commit,
            "working_tree_hash": working_tree_hash,
            "limit": limit,
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        return self._records(Build.from_api, "/v5/builds", params)

    def cancel_build(self, build_id: str) -> Build:
        """`POST /v5/builds/{id}/cancel` (202); the answer shows the build as it was before the cancel
        (docs/sgp-api.md#build-cancel-answers-202).

        Retried like a read: the server accepts a repeated cancel and does nothing more
        (docs/sgp-api.md#cancel-a-build).
        """
        path = f"/v5/builds/{_segment(build_id)}/cancel"
        with _about("POST", path):
            return Build.from_api(self._call("POST", path, idempotent=True))

    def open_build_logs(self, build_id: str, *, last_event_id: str = "") -> LogStream:
        """`GET /v5/builds/{id}/logs` as SSE, with no read timeout (docs/sgp-api.md#build-log-stream-quirks); it may
        close before the build ends.

        SGP documents no resume cursor (docs/sgp-api.md#build-log-reconnects): a server may replay from the first
        line, resume after `Last-Event-ID`, or start at the live tail. A non-empty `last_event_id` is sent as
        `Last-Event-ID`, as the SSE standard has a reconnecting client do.
        """
        path = f"/v5/builds/{_segment(build_id)}/logs"
        extra = {"Last-Event-ID": last_event_id} if last_event_id else None
        response = self.transport.request(
            "GET", path, idempotent=True, stream=True, accept="text/event-stream", extra_headers=extra
        )
        content_type = response.headers.get("Content-Type", "")
        if "text/event-stream" not in content_type:
            logger.debug("GET %s answered %r, not text/event-stream; parsing it as SSE anyway", path, content_type)
        return LogStream(response, path, self.transport.recorder)

    # --- deployments (docs/sgp-api.md#deployments) --------------------------------------------------------

    def create_deployment(
        self,
        *,
        manifest_file: str,
        environment_config: str,
        build_id: str | None = None,
        image_name: str | None = None,
        image_tag: str | None = None,
        preview: bool = False,
        preview_label: str | None = None,
        expires_at: datetime | str | None = None,
    ) -> Deployment:
        """`POST /v5/agentex/deployments`; the YAML files go as text (docs/sgp-api.md#yaml-travels-as-text). Never
        retried once it may have arrived."""
        if not build_id and not image_name:
            raise InputError("create_deployment needs a build_id, or an image_name and image_tag")
        body: dict[str, Any] = {"manifest_file": manifest_file, "environment_config": environment_config}
        optional = {"build_id": build_id, "image_name": image_name, "image_tag": image_tag}
        body.update({key: value for key, value in optional.items() if value is not None})
        if preview:
            body["preview"] = True
        if preview_label is not None:
            body["preview_label"] = preview_label
        if expires_at is not None:
            body["expires_at"] = format_datetime(expires_at) if isinstance(expires_at, datetime) else expires_at
        with _about("POST", "/v5/agentex/deployments"):
            return Deployment.from_api(self._call("POST", "/v5/agentex/deployments", idempotent=False, json=body))

    def get_deployment(self, deployment_id: str) -> Deployment:
        """`GET /v5/agentex/deployments/{id}`, with its Kubernetes events."""
        path = f"/v5/agentex/deployments/{_segment(deployment_id)}"
        with _about("GET", path):
            return Deployment.from_api(self._call("GET", path))

    def list_deployments(
        self,
        *,
        agent_name: str | None = None,
        build_id: str | None = None,
        preview_label: str | None = None,
        limit: int = 100,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> Iterator[Deployment]:
        """`GET /v5/agentex/deployments`, every page. `preview_label` is an exact match
        (docs/sgp-api.md#preview-label-sanitising); re-check it
        (docs/sgp-api.md#older-servers-ignore-unknown-filters)."""
        params = {
            "agent_name": agent_name,
            "build_id": build_id,
            "preview_label": preview_label,
            "limit": limit,
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        return self._records(Deployment.from_api, "/v5/agentex/deployments", params)

    def delete_deployment(self, deployment_id: str) -> Deployment:
        """`DELETE /v5/agentex/deployments/{id}`: the record marked deleted.

        Retried like a read (a failed teardown leaves the record unchanged, docs/sgp-api.md#delete-a-deployment). When a
        retry then meets the 400 for an already-deleted record, an earlier attempt did the work: the deleted record is
        returned.
        Without a retry, deleting a DELETED, CANCELLED or SUPERSEDED record raises ValidationError, NotFoundError or
        ConflictError, as the server chooses (docs/sgp-api.md#deleting-an-ended-deployment).
        """
        path = f"/v5/agentex/deployments/{_segment(deployment_id)}"
        retried: list[str] = []
        try:
            with _about("DELETE", path):
                return Deployment.from_api(self._call("DELETE", path, retry_log=retried))
        except (ValidationError, ConflictError):
            if not retried:
                raise
            current = self.get_deployment(deployment_id)
            if current.status != "deleted":
                raise
            logger.info("DELETE %s: an earlier attempt had already deleted it", path)
            return current

    def deployment_logs(self, deployment_id: str, *, cursor: str = "", limit: int = 100) -> LogPage:
        """One page of `GET /v5/agentex/deployments/{id}/logs` (docs/sgp-api.md#deployment-log-cursor).

        Sends `cursor` when not empty; `limit` is kept within the API's 1-500. The page's `next_cursor` is the
        server's, or `cursor` again when the server sends an empty one, so feeding it back never replays the log.
        """
        path = f"/v5/agentex/deployments/{_segment(deployment_id)}/logs"
        params = {"cursor": cursor or None, "limit": max(1, min(500, limit))}
        with _about("GET", path):
            return LogPage.from_api(self._call("GET", path, params=params), previous_cursor=cursor)


def _segment(value: str) -> str:
    """An id as one percent-encoded path segment; an empty id or a dot segment would address another resource."""
    text = str(value)
    if text in ("", ".", ".."):
        raise InputError(f"{text!r} is not a valid id")
    return quote(text, safe="")
