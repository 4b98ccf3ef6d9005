"""What a run reports: the step outputs of README.md#inputs-and-outputs and the job summary table
(docs/runner.md#job-summary).

`Report` is filled in by the phases as they go, so that whatever happens (success, failure, timeout, cancel) the
outputs written at the end say exactly how far the run got.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sgp_action.api.times import format_datetime
from sgp_action.durations import format_elapsed

log = logging.getLogger(__name__)

#: Every output of README.md#inputs-and-outputs except `matrix` (written by `detect`), in the order they are written.
OUTPUT_NAMES = (
    "result",
    "build-id",
    "build-status",
    "reused-build",
    "image-name",
    "image-tag",
    "image-url",
    "working-tree-hash",
    "deployment-id",
    "deployment-status",
    "preview-label",
    "expires-at",
    "helm-release-name",
    "namespace",
    "deleted",
)

_RESULT_ICONS = {"success": "✅", "failure": "❌", "cancelled": "⏹️", "skipped": "⏭️"}
#: A run at least this long gets a timeline of its phases (a Mermaid gantt chart, which GitHub renders).
TIMELINE_SECONDS = 5.0
#: The headings a failure message's details start with (the deploy phase's events and log tail, the build's tail).
_DETAIL_HEADINGS = {
    "Last events:": "Last Kubernetes events",
    "Last log lines:": "Last deploy log lines",
}


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 preview`, `2 previews` (`many` for an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


class ReportSink(Protocol):
    """The part of `sgp_action.ci.runner.Runner` the report writes to."""

    def set_output(self, name: str, value: str) -> None: ...

    def append_summary(self, markdown: str) -> None: ...


def format_timestamp(value: Any) -> str:
    """An API timestamp as ISO 8601 UTC with `Z` (a string from the server is kept as it came)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def md_code(text: str, *, empty: str = "-") -> str:
    """Server text as one inline code span: inert in a paragraph, a heading or a table cell.

    A server (or anyone who can make it echo text) must not get a link, an image, an @mention, HTML or a column break
    into the job summary or the PR comment. Inside a code span nothing is markdown, HTML, a mention or an autolink;
    the fence is longer than any backtick run of the text so the text cannot close it (CommonMark 6.1), and pipes are
    escaped because GFM splits table cells before it parses code spans. Line breaks become spaces. `empty` stands in
    for an empty text (a code span cannot be empty).
    """
    flat = " ".join(_CONTROL.sub(" ", text).split()).replace("|", "\\|")
    if not flat:
        return empty
    fence = "`" * (_longest_backtick_run(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


@dataclass
class Report:
    """The outcome of one run as it stands; filled in phase by phase."""

    command: str = ""
    result: str = ""
    message: str = ""
    build_id: str = ""
    build_status: str = ""
    reused_build: bool | None = None
    image_name: str = ""
    image_tag: str = ""
    image_url: str = ""
    working_tree_hash: str = ""
    deployment_id: str = ""
    deployment_status: str = ""
    preview_label: str = ""
    expires_at: str = ""
    helm_release_name: str = ""
    namespace: str = ""
    deployment_url: str = ""  # the filled-in `deployment-url` template, once the deployment is up
    deleted: list[str] | None = None
    dry_run: bool = False
    durations: dict[str, float] = field(default_factory=dict)
    #: (phase, start, end) on time.monotonic, in the order the phases ended: the timeline of the summary.
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _written: bool = field(default=False, repr=False, compare=False)
    _deleted_seen: set[str] = field(default_factory=set, repr=False, compare=False)
    _deleted_for: list[str] | None = field(default=None, repr=False, compare=False)

    def record_build(self, build: Any, *, reused: bool | None = None) -> None:
        """Copy what a `models.Build` says (id, status, image) into the report."""
        self.build_id = str(build.id or self.build_id)
        self.build_status = str(build.status or "").lower()
        if reused is not None:
            self.reused_build = reused
        for name in ("image_name", "image_tag", "image_url", "working_tree_hash"):
            value = getattr(build, name, None)
            if value:
                setattr(self, name, str(value))

    def record_deployment(self, deployment: Any) -> None:
        """Copy what a `models.Deployment` says (id, status, preview details) into the report."""
        self.deployment_id = str(deployment.id or self.deployment_id)
        self.deployment_status = str(deployment.status or "").lower()
        # Always ISO 8601 UTC (docs/sgp-api.md#timestamp-formats): the server may write epoch numbers or `+0000`.
        self.expires_at = format_timestamp(getattr(deployment, "expires_at", None)) or self.expires_at
        for name in ("preview_label", "helm_release_name", "namespace"):
            value = getattr(deployment, name, None)
            if value:
                setattr(self, name, str(value))

    def add_deleted(self, deployment_id: str) -> None:
        """Remember a deployment this run deleted (output `deleted`)."""
        if self.deleted is None:
            self.deleted = []
        # A set beside the list: a sweep adds tens of thousands of ids, and `in list` made that quadratic. The
        # list may be replaced by callers (`report.deleted = []`), so the set follows the list it was built for.
        if self._deleted_for is not self.deleted:
            self._deleted_seen = set(self.deleted)
            self._deleted_for = self.deleted
        if deployment_id not in self._deleted_seen:
            self._deleted_seen.add(deployment_id)
            self.deleted.append(deployment_id)

    def record_span(self, phase: str, start: float, end: float) -> float:
        """Record a phase measured by its own code (time.monotonic values); its seconds, to print the same figure."""
        seconds = max(end - start, 0.0)
        self.spans.append((phase, start, start + seconds))
        self.durations[phase] = self.durations.get(phase, 0.0) + seconds
        return seconds

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Measure a phase's wall-clock duration (also when it fails), unless the code inside recorded it itself."""
        start = time.monotonic()
        before = len(self.spans)
        try:
            yield
        finally:
            if not any(name == phase for name, _, _ in self.spans[before:]):
                self.record_span(phase, start, time.monotonic())

    def outputs(self) -> dict[str, str]:
        """The step outputs: every known value (empty ones are left out, `result` is always there)."""
        values = {
            "result": self.result or "failure",
            "build-id": self.build_id,
            "build-status": self.build_status,
            "reused-build": "" if self.reused_build is None else ("true" if self.reused_build else "false"),
            "image-name": self.image_name,
            "image-tag": self.image_tag,
            "image-url": self.image_url,
            "working-tree-hash": self.working_tree_hash,
            "deployment-id": self.deployment_id,
            "deployment-status": self.deployment_status,
            "preview-label": self.preview_label,
            "expires-at": self.expires_at,
            "helm-release-name": self.helm_release_name,
            "namespace": self.namespace,
            # One id a line: act and the Gitea/Forgejo runners cannot read an output line over 64 KiB (bufio.Scanner),
            # which a sweep of 2,000 previews on one line would reach.
            "deleted": "" if self.deleted is None else json.dumps(self.deleted, indent=0),
        }
        return {name: values[name] for name in OUTPUT_NAMES if values[name]}

    def summary_markdown(self) -> str:
        """The job summary: a heading and a two-column table of build, image, deployment, label, expiry, times."""
        result = self.result or "failure"
        title = f"{_RESULT_ICONS.get(result, '')} SGP {self.command or 'run'}: {result}".strip()
        if self.dry_run and result == "success":
            title = f"🧪 SGP {self.command or 'run'}: dry run, nothing created"
        rows: list[tuple[str, str]] = []
        head, _, details = self.message.partition("\n")
        if head:
            rows.append(("Message", md_code(head)))
        if self.build_id:
            reused = ", reused" if self.reused_build else ""
            rows.append(("Build", f"{md_code(self.build_id)} ({md_code(self.build_status or 'unknown')}{reused})"))
        if self.image_name:
            image = f"{self.image_name}:{self.image_tag}" if self.image_tag else self.image_name
            rows.append(("Image", md_code(image)))
        if self.image_url:
            rows.append(("Image URL", md_code(self.image_url)))
        if self.working_tree_hash:
            rows.append(("Working-tree hash", md_code(self.working_tree_hash[:16] + "…")))
        if self.deployment_id:
            status = md_code(self.deployment_status or "unknown")
            rows.append(("Deployment", f"{md_code(self.deployment_id)} ({status})"))
        for label, value in (
            ("URL", self.deployment_url),
            ("Preview label", self.preview_label),
            ("Expires at", self.expires_at),
            ("Helm release", self.helm_release_name),
            ("Namespace", self.namespace),
        ):
            if value:
                rows.append((label, md_code(value)))
        if self.deleted is not None:
            deleted = ", ".join(md_code(d) for d in self.deleted) or "none"
            rows.append(("Deleted", deleted))
        for phase, seconds in self.durations.items():
            rows.append((f"Time: {phase}", format_elapsed(seconds)))
        lines = [f"### {title}", ""]
        if self.dry_run:
            lines += ["Dry run: the inputs were checked and the build context packaged; nothing was sent to SGP.", ""]
        if rows:
            lines += ["| | |", "| --- | --- |"] + [f"| {name} | {value} |" for name, value in rows]
        if details.strip():
            lines += _details_markdown(head, details)
        lines += self.timeline_markdown()
        return "\n".join(lines) + "\n"

    def timeline_markdown(self) -> list[str]:
        """A Mermaid gantt chart of the phases (packaging, upload, build, deploy, health), for a run that took a while.

        Phase names are ours (never server text); times are milliseconds from the run's start.
        """
        total = next((span for span in self.spans if span[0] == "total"), None)
        phases = [span for span in self.spans if span[0] != "total"]
        if total is None or not phases or total[2] - total[1] < TIMELINE_SECONDS:
            return []
        origin = total[1]
        lines = ["", "```mermaid", "gantt", "    title Phases of the run", "    dateFormat x", "    axisFormat %M:%S"]
        for name, start, end in sorted(phases, key=lambda span: span[1]):
            first, last = round((start - origin) * 1000), round((end - origin) * 1000)
            lines.append(f"    {name} {format_elapsed(end - start)} : {first}, {max(last, first + 1)}")
        return [*lines, "```"]

    def write(self, sink: ReportSink) -> bool:
        """Write the outputs and the summary once (later calls do nothing and return False)."""
        with self._lock:
            if self._written:
                return False
            self._written = True
        for name, value in self.outputs().items():
            try:
                sink.set_output(name, value)
            except Exception as exc:  # one refused value (docs/runner.md#step-outputs) must not lose the other outputs
                log.warning("output %s not written: %s", name, exc)
        try:
            sink.append_summary(self.summary_markdown())
        except Exception as exc:
            log.warning("job summary not written: %s", exc)
        return True


def fenced(text: str, info: str = "text") -> list[str]:
    """Server text verbatim in a fence longer than any backtick run it holds: it can neither close the fence nor
    render as markdown or HTML."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return [f"{fence}{info}", text.rstrip(), fence]


def _details_markdown(head: str, details: str) -> list[str]:
    """A failure's details: each known part (Kubernetes events, deploy or build log tail) in a fence of its own."""
    first = "Last build log lines" if head.rstrip().endswith("last log lines:") else "Details"
    sections: list[tuple[str, list[str]]] = [(first, [])]
    for line in details.splitlines():
        heading = _DETAIL_HEADINGS.get(line.strip())
        if heading is not None:
            sections.append((heading, []))
        else:
            sections[-1][1].append(line)
    lines: list[str] = []
    for heading, body in sections:
        text = "\n".join(body).strip("\n")
        if text.strip():
            lines += ["", f"**{heading}**", "", *fenced(text)]
    return lines
