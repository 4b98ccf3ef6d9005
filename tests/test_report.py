"""Step outputs and the job summary of a run (README.md#inputs-and-outputs, docs/runner.md#job-summary)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from sgp_action.api.models import Deployment
from sgp_action.ci.report import OUTPUT_NAMES, Report, format_timestamp, md_code, plural
from tests.markdown_checks import HOSTILE, assert_inert, code_span_text


class Sink:
    def __init__(self) -> None:
        self.outputs: dict[str, str] = {}
        self.summaries: list[str] = []

    def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = value

    def append_summary(self, markdown: str) -> None:
        self.summaries.append(markdown)


def _build(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        id="b-1",
        status="SUCCESS",
        image_name="echo-bot",
        image_tag="abc1234",
        image_url="reg/echo-bot:abc1234",
        working_tree_hash="f" * 64,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _deployment(**kw: object) -> SimpleNamespace:
    base = dict(
        id="d-1",
        status="HEALTHY",
        preview_label="pr-7",
        expires_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        helm_release_name="echo-bot-pr-7-ab12",
        namespace="team-echo",
        raw={},
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_a_full_preview_gives_every_output() -> None:
    report = Report(command="preview", result="success")
    report.record_build(_build(), reused=True)
    report.record_deployment(_deployment())
    report.deleted = []
    assert report.outputs() == {
        "result": "success",
        "build-id": "b-1",
        "build-status": "success",
        "reused-build": "true",
        "image-name": "echo-bot",
        "image-tag": "abc1234",
        "image-url": "reg/echo-bot:abc1234",
        "working-tree-hash": "f" * 64,
        "deployment-id": "d-1",
        "deployment-status": "healthy",
        "preview-label": "pr-7",
        "expires-at": "2026-01-02T03:04:05Z",
        "helm-release-name": "echo-bot-pr-7-ab12",
        "namespace": "team-echo",
        "deleted": "[]",
    }
    assert list(report.outputs()) == list(OUTPUT_NAMES)


def test_result_is_always_written_even_for_an_empty_report() -> None:
    assert Report().outputs() == {"result": "failure"}
    assert Report(result="skipped").outputs() == {"result": "skipped"}


@pytest.mark.parametrize(
    "written",
    [
        "2026-01-02T03:04:05.123456Z",
        "2026-01-02T03:04:05.123456+0000",
        "2026-01-02T05:04:05.123456+02:00",
        1767323045.123456,
    ],
)
def test_server_expiry_is_iso_utc_whatever_the_server_wrote_and_later_records_do_not_erase_values(
    written: object,
) -> None:
    report = Report()
    report.record_deployment(Deployment.from_api({"id": "d-1", "status": "Completed", "expires_at": written}))
    assert report.expires_at == "2026-01-02T03:04:05.123456Z"
    assert report.deployment_status == "healthy"
    report.record_deployment(_deployment(status="pending", preview_label="pr-7", expires_at=None, raw={}))
    assert report.expires_at == "2026-01-02T03:04:05.123456Z"
    assert report.preview_label == "pr-7" and report.helm_release_name == "echo-bot-pr-7-ab12"
    assert report.deployment_status == "pending"


def test_deleted_is_a_json_array_without_duplicates() -> None:
    report = Report()
    report.add_deleted("d-1")
    report.add_deleted("d-2")
    report.add_deleted("d-1")
    assert json.loads(report.outputs()["deleted"]) == ["d-1", "d-2"]


class CountedId(str):
    """An id that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_add_deleted_is_linear_in_the_number_of_ids() -> None:
    # A sweep of 50,000 previews took 16 s in `id not in list`: each id must not be compared with every other.
    report = Report()
    CountedId.comparisons = 0
    for i in range(2000):
        report.add_deleted(CountedId(f"d-{i}"))
    report.add_deleted(CountedId("d-5"))
    assert CountedId.comparisons < 100
    assert report.deleted is not None and len(report.deleted) == 2000


def test_add_deleted_follows_a_replaced_list() -> None:
    report = Report()
    report.add_deleted("d-1")
    report.deleted = ["d-2"]
    report.add_deleted("d-1")
    report.add_deleted("d-2")
    assert report.deleted == ["d-2", "d-1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
    ],
)
def test_format_timestamp(value: object, expected: str) -> None:
    assert format_timestamp(value) == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_md_code_is_one_code_span_showing_the_text(text: str) -> None:
    cell = md_code(text)
    assert "\n" not in cell and "\r" not in cell
    assert code_span_text(cell) == " ".join(re.sub(r"[\x00-\x1f\u2028]", " ", text).split())
    assert_inert(f"| x | {cell} |")


def test_md_code_of_nothing_is_a_dash() -> None:
    assert md_code("") == "-" and md_code(" \n ") == "-" and md_code("", empty="none") == "none"


@pytest.mark.parametrize("text", HOSTILE)
def test_every_server_value_in_the_summary_is_inert(text: str) -> None:
    report = Report(command="preview", result="failure", message=f"{text}\ndetails {text}")
    report.record_build(_build(id=text, status=text, image_name=text, image_tag=text, image_url=text))
    report.record_deployment(
        _deployment(id=text, status=text, preview_label=text, helm_release_name=text, namespace=text, raw={})
    )
    report.expires_at = text
    report.add_deleted(text)
    summary = report.summary_markdown()
    table, _, details = summary.partition("\n**Details**\n")
    assert_inert(table)
    assert table.count("| Message |") == 1 and f"details {text.splitlines()[0]}" in details


def test_summary_table_shows_build_image_deployment_label_expiry_and_durations() -> None:
    report = Report(command="preview", result="success")
    report.record_build(_build(), reused=False)
    report.record_deployment(_deployment())
    report.durations = {"build": 12.4, "deploy": 0.25}
    text = report.summary_markdown()
    lines = text.splitlines()
    assert lines[0] == "### ✅ SGP preview: success"
    assert "| Build | `b-1` (`success`) |" in lines
    assert "| Image | `echo-bot:abc1234` |" in lines
    assert "| Deployment | `d-1` (`healthy`) |" in lines
    assert "| Preview label | `pr-7` |" in lines
    assert "| Expires at | `2026-01-02T03:04:05Z` |" in lines
    assert "| Time: build | 12.4s |" in lines and "| Time: deploy | 250ms |" in lines


def test_summary_of_a_failure_carries_the_message_and_hostile_text_stays_inert() -> None:
    message = "deployment d-9 ended <b>failed</b>|\n|<script>\n```\n</details># not a heading"
    report = Report(command="deploy", result="failure", message=message)
    report.record_deployment(_deployment(status="FAILED|x", preview_label=None, raw={}, expires_at=None))
    text = report.summary_markdown()
    assert "| Message | `deployment d-9 ended <b>failed</b>\\|` |" in text
    assert "| Deployment | `d-1` (`failed\\|x`) |" in text
    # The details (log tail, events) are verbatim inside a fence their own backticks cannot close.
    before, fenced = text.split("````text\n", 1)
    assert "<script>" not in before
    body, after = fenced.split("\n````\n", 1)
    assert body == "|<script>\n```\n</details># not a heading"
    assert after == ""


def test_write_happens_once() -> None:
    report = Report(command="build", result="success")
    sink = Sink()
    assert report.write(sink) is True
    report.result = "failure"
    assert report.write(sink) is False
    assert sink.outputs == {"result": "success"} and len(sink.summaries) == 1


def test_a_long_deleted_list_keeps_every_line_short() -> None:
    report = Report()
    ids = [f"deploy_{n:024x}" for n in range(2000)]
    for deployment_id in ids:
        report.add_deleted(deployment_id)
    value = report.outputs()["deleted"]
    assert json.loads(value) == ids
    assert max(len(line) for line in value.splitlines()) < 100  # act's line limit is 64 KiB


@pytest.mark.parametrize("text", HOSTILE)
def test_the_cleanup_table_is_inert(text: str) -> None:
    from sgp_action.run.cleanup import Doomed, summary_markdown

    doomed = [Doomed(_deployment(id=text, preview_label=text), "replaced", f"replaced by {text}")]  # type: ignore[arg-type]
    assert_inert(summary_markdown(doomed, set(), dry_run=True), columns=3)


@pytest.mark.parametrize(("count", "text"), [(0, "0 previews"), (1, "1 preview"), (2, "2 previews")])
def test_plural(count: int, text: str) -> None:
    assert plural(count, "preview") == text


def _timed_report(total: float) -> Report:
    report = Report(command="preview", result="success")
    report.record_span("packaging", 100.0, 100.5)
    report.record_span("upload", 100.5, 101.0)
    report.record_span("build", 101.0, 101.0 + total - 2.0)
    report.record_span("total", 100.0, 100.0 + total)
    return report


def test_a_long_run_gets_a_gantt_chart_of_its_phases() -> None:
    text = _timed_report(12.0).summary_markdown()
    chart = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert chart[:4] == ["gantt", "    title Phases of the run", "    dateFormat x", "    axisFormat %M:%S"]
    assert chart[4:] == [
        "    packaging 500ms : 0, 500",
        "    upload 500ms : 500, 1000",
        "    build 10.0s : 1000, 11000",
    ]
    assert "| Time: build | 10.0s |" in text and "| Time: total | 12.0s |" in text


def test_a_short_run_has_no_chart() -> None:
    assert "mermaid" not in _timed_report(3.0).summary_markdown()


def test_a_phase_measured_inside_is_not_measured_again() -> None:
    report = Report()
    with report.timed("build"):
        report.record_span("build", 5.0, 6.5)
    assert report.durations == {"build": 1.5} and len(report.spans) == 1
