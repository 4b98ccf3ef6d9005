"""Server variants: answers another plausible SGP server would give where the platform's documents are silent.

Each name is set with `--variant NAME` (repeatable) or at run time with `POST /_emulator/variants` (a JSON list of
names; `[]` restores the default answers). `GET /_emulator/variants` shows the active ones. Without any variant the
emulator answers exactly as before. The variants:

* `status-words`: deployment statuses use the SDK docstring's words in mixed case (`pending`, `Running`,
  `Completed`, `Failed`, `Cancelled`, `Deleted`, `Superseded`) instead of PENDING / IN_PROGRESS / HEALTHY ...;
* `no-sort`: the list calls refuse `sort_by` / `sort_order` with FastAPI's 422 naming the parameter, and list in
  id order (no useful time order);
* `no-has-more`: lists carry no `has_more` (builds) or `has_more: null` (deployments) and always a `next_cursor`
  (the last id of the page), so only a short page says the list ended;
* `delete-ended-404` / `delete-ended-409`: deleting a deployment that has already ended answers 404 / 409 instead
  of 400;
* `sse-resume`: build-log events carry `id: N` (the line number); a connection sending `Last-Event-ID: N` resumes
  after line N;
* `sse-tail`: build-log events carry ids, and a reconnect (any connection after the first for that build) starts
  at the live tail, after the last line any earlier connection was sent, whatever `Last-Event-ID` says;
* `foreign-agent`: every agent name is first met as an agent made elsewhere (the UI, sgpctl, another CI): it has an
  archived build that `GET /v5/builds?agent_name=` does not list and a healthy production deployment of that build;
  a create with `agent_name` answers 409 without naming the id, which is found through the deployment's build;
* `epoch-times`: `created_at` is an epoch number of seconds, the other times ISO 8601 with a `+0000` offset.

The reconnect variants only show with reconnects: combine them with the `sse-drop-after=N` fault.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from sgp_action.emulator.deploys import iso

VARIANTS: dict[str, str] = {
    "status-words": "deployment statuses pending/Running/Completed/Failed/Cancelled (SDK docstring words, mixed case)",
    "no-sort": "list calls answer 422 to sort_by/sort_order and list in id order",
    "no-has-more": "lists omit has_more (or send null) and always send next_cursor",
    "delete-ended-404": "deleting an ended deployment answers 404",
    "delete-ended-409": "deleting an ended deployment answers 409",
    "sse-resume": "build-log events carry ids; Last-Event-ID resumes after that line",
    "sse-tail": "build-log events carry ids; a reconnect starts at the live tail",
    "foreign-agent": "agents exist already, made elsewhere: no listed build, create by name answers 409",
    "epoch-times": "created_at as epoch seconds, other times with a +0000 offset",
}
VARIANT_NAMES = tuple(VARIANTS)
STATUS_WORDS = {
    "PENDING": "pending",
    "IN_PROGRESS": "Running",
    "HEALTHY": "Completed",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
    "DELETED": "Deleted",
    "SUPERSEDED": "Superseded",
}


class VariantSpecError(ValueError):
    """An unknown variant name; the message lists the known ones."""


def parse_variants(names: Iterable[Any]) -> frozenset[str]:
    """Validate variant names; raise `VariantSpecError` naming the first unknown one."""
    out: set[str] = set()
    for name in names:
        if not isinstance(name, str) or name.strip() not in VARIANTS:
            raise VariantSpecError(f"unknown variant {name!r}; known: {', '.join(VARIANT_NAMES)}")
        out.add(name.strip())
    if {"delete-ended-404", "delete-ended-409"} <= out:
        raise VariantSpecError("choose one of delete-ended-404 and delete-ended-409")
    if {"sse-resume", "sse-tail"} <= out:
        raise VariantSpecError("choose one of sse-resume and sse-tail")
    return frozenset(out)


class VariantHolder:
    """Thread-safe holder of the active variants (read on every answer, replaced at run time)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._active = parse_variants(names)

    @property
    def current(self) -> frozenset[str]:
        """The active variant names."""
        with self._lock:
            return self._active

    def replace(self, names: frozenset[str]) -> None:
        """Swap in another set of variants (an empty set restores the default answers)."""
        with self._lock:
            self._active = names

    def specs(self) -> list[str]:
        """The active names, sorted (what `GET /_emulator/variants` shows)."""
        return sorted(self.current)


def status_word(status: str, variants: frozenset[str]) -> str:
    """A deployment status as the `status-words` variant writes it (unchanged without it)."""
    return STATUS_WORDS.get(status.upper(), status) if "status-words" in variants else status


def stamp(moment: datetime, variants: frozenset[str], *, epoch: bool = False) -> Any:
    """A time as the active variants write it: ISO with a Z, or (`epoch-times`) epoch seconds / a +0000 offset."""
    if "epoch-times" not in variants:
        return iso(moment)
    if epoch:
        return round(moment.timestamp(), 6)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def sse_with_ids(variants: frozenset[str]) -> bool:
    """Whether build-log events carry `id:` lines."""
    return bool({"sse-resume", "sse-tail"} & variants)


def sse_start(variants: frozenset[str], last_event_id: str | None, delivered: int, reconnect: bool) -> int:
    """The index of the first build-log line a new connection is sent.

    `delivered` is the furthest line any earlier connection to the build was sent; `reconnect` says there was one.
    """
    if "sse-tail" in variants:
        return delivered if reconnect else 0
    if "sse-resume" in variants and last_event_id:
        try:
            return max(0, min(int(last_event_id.strip()), delivered))
        except ValueError:
            return 0
    return 0


def sse_frames(lines: Sequence[str], first: int, with_ids: bool) -> bytes:
    """SSE events for `lines`, the first being line number `first + 1`; with ids when asked."""
    frames = []
    for number, line in enumerate(lines, start=first + 1):
        event = b"data: " + json.dumps({"line": line}).encode() + b"\n\n"
        frames.append(b"id: %d\n" % number + event if with_ids else event)
    return b"".join(frames)
