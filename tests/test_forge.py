"""The forge REST client against a tiny local forge API (comments with paging, statuses), recording requests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sgp_action.api.deadlines import call_with_deadline
from sgp_action.ci.forge import PAGE_SIZE, ForgeClient, ForgeError
from tests.fake_forge import REPO, FakeForge, serve_forge


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with serve_forge() as state:
        yield state


def test_list_follows_pages_until_a_short_one(forge: FakeForge) -> None:
    for n in range(PAGE_SIZE + 13):
        forge.add(7, f"comment {n}")
    forge.add(8, "another PR")
    client = ForgeClient(forge.url, REPO, "tok")
    comments = client.list_comments(7)
    assert [c.body for c in comments] == [f"comment {n}" for n in range(PAGE_SIZE + 13)]
    gets = [r for r in forge.requests if r[0] == "GET"]
    assert len(gets) == 2


def test_create_edit_status_and_headers(forge: FakeForge) -> None:
    client = ForgeClient(forge.url, REPO, "s3cret")
    comment_id = client.create_comment(3, "hello")
    client.edit_comment(comment_id, "edited")
    client.create_status("abc123", "success", "sgp-agentex/a", "ok", "http://run")
    assert forge.comments[comment_id]["body"] == "edited"
    assert forge.statuses == [
        {
            "sha": "abc123",
            "state": "success",
            "context": "sgp-agentex/a",
            "description": "ok",
            "target_url": "http://run",
        }
    ]
    for _, _, headers, _ in forge.requests:
        assert headers["Authorization"] == "token s3cret"
        assert headers["Accept"] == "application/vnd.github+json"


@pytest.mark.parametrize("fail", ["http500", "unreachable"])
def test_failures_are_forge_errors_without_the_token(forge: FakeForge, fail: str) -> None:
    forge.fail = True
    url = forge.url if fail == "http500" else "http://127.0.0.1:9/api/v1"
    client = ForgeClient(url, REPO, "s3cret", sleep=lambda seconds: None)
    with pytest.raises(ForgeError) as info:
        client.list_comments(1)
    assert "s3cret" not in str(info.value)


def _client(forge: FakeForge, sleeps: list[float]) -> ForgeClient:
    return ForgeClient(forge.url, REPO, "tok", sleep=sleeps.append)


def test_reads_are_retried_on_429_and_5xx_honouring_retry_after(forge: FakeForge) -> None:
    forge.pulls[4] = "closed"
    forge.answers = [(429, {"Retry-After": "2"}), (503, {"Retry-After": "999"})]
    sleeps: list[float] = []
    assert _client(forge, sleeps).pull_state(4) == "closed"
    assert sleeps == [2.0, 10.0]  # the second Retry-After is capped
    assert len(forge.requests) == 3


def test_reads_give_up_after_three_attempts(forge: FakeForge) -> None:
    forge.answers = [(502, {})] * 3
    sleeps: list[float] = []
    with pytest.raises(ForgeError, match="HTTP 502"):
        _client(forge, sleeps).list_comments(1)
    assert len(sleeps) == 2 and all(0.5 <= s <= 4.0 for s in sleeps)
    assert len(forge.requests) == 3


@pytest.mark.parametrize(("status", "sent"), [(429, 2), (503, 2), (502, 1), (500, 1)])
def test_a_comment_is_sent_again_only_when_the_forge_surely_did_not_take_it(
    forge: FakeForge, status: int, sent: int
) -> None:
    forge.answers = [(status, {"Retry-After": "0"})]
    sleeps: list[float] = []
    client = _client(forge, sleeps)
    if sent == 2:
        client.create_comment(5, "hello")
        assert [c["body"] for c in forge.comments.values()] == ["hello"]
    else:
        with pytest.raises(ForgeError, match=f"HTTP {status}"):
            client.create_comment(5, "hello")
        assert forge.comments == {}
    assert len(forge.writes()) == sent


def test_a_comment_is_sent_again_when_the_connection_never_opened() -> None:
    sleeps: list[float] = []
    client = ForgeClient("http://127.0.0.1:9/api/v1", REPO, "tok", sleep=sleeps.append)
    with pytest.raises(ForgeError, match="ConnectionError"):
        client.create_comment(5, "hello")
    assert len(sleeps) == 2  # refused every time: three attempts


def test_pull_state_of_an_unknown_pr_is_none(forge: FakeForge) -> None:
    forge.pulls[1] = "OPEN"
    client = _client(forge, [])
    assert client.pull_state(1) == "open"
    assert client.pull_state(2) is None


def test_a_body_dripped_a_byte_at_a_time_ends_by_the_budget(forge: FakeForge) -> None:
    forge.drip = "body"
    client = ForgeClient(forge.url, REPO, "tok", budget=0.5)
    start = time.monotonic()
    errors: list[str] = []

    def read() -> None:
        try:
            client.list_comments(7)
        except ForgeError as exc:
            errors.append(str(exc))

    finished = call_with_deadline(read, 5.0).done
    elapsed = time.monotonic() - start
    assert finished and elapsed < 1.5, elapsed
    assert errors == [
        "GET /issues/7/comments: the forge sent its answer too slowly (not done in 0.5 s)"
    ]  # the watchdog shut the socket; no retry once the budget is spent
    assert len(forge.requests) == 1


def test_no_request_is_sent_once_the_budget_is_spent_or_the_client_abandoned(forge: FakeForge) -> None:
    now = [0.0]
    client = ForgeClient(forge.url, REPO, "tok", budget=10.0, clock=lambda: now[0])
    client.edit_comment(forge.add(7, "a"), "b")
    now[0] = 10.0
    with pytest.raises(ForgeError, match="within the forge budget of 10 s"):
        client.create_comment(7, "late")
    fresh = ForgeClient(forge.url, REPO, "tok")
    fresh.abandon()
    with pytest.raises(ForgeError, match="given up"):
        fresh.create_comment(7, "late")
    assert [m for m, _ in forge.writes()] == ["PATCH"] and fresh.abandoned


def test_a_retry_that_would_outlast_the_budget_is_not_waited_for(forge: FakeForge) -> None:
    forge.answers = [(503, {"Retry-After": "8"})]
    sleeps: list[float] = []
    client = ForgeClient(forge.url, REPO, "tok", sleep=sleeps.append, budget=5.0)
    with pytest.raises(ForgeError, match="no time is left"):
        client.list_comments(7)
    assert sleeps == [] and len(forge.requests) == 1


def test_delete_comment_and_one_already_gone(forge: FakeForge) -> None:
    client = ForgeClient(forge.url, REPO, "tok")
    comment_id = forge.add(7, "x")
    client.delete_comment(comment_id)
    client.delete_comment(comment_id)  # 404: someone else deleted it first
    assert forge.comments == {} and [m for m, _ in forge.writes()] == ["DELETE", "DELETE"]
