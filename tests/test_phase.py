"""What the phases share: a create in flight stays registered only when cancelled; safe create retries."""

from __future__ import annotations

import contextlib
import threading

import pytest

from sgp_action.api.protocol import ApiClient
from sgp_action.errors import ApiConnectionError, Cancelled, ServerError, ValidationError
from sgp_action.run.cancel import CancelToken
from sgp_action.run.phase import CREATE_ATTEMPTS, PhaseBase
from tests.fakes import FakeClient, phase_env


class _NoSleepToken(CancelToken):
    """A token whose sleeps (create_safely's back-off) are recorded instead of waited."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _phase() -> PhaseBase:
    phase = PhaseBase(phase_env(FakeClient()), timeout=30.0)
    phase.token = _NoSleepToken()
    return phase


@pytest.mark.parametrize(
    ("error", "kept"),
    [(None, False), (ValidationError("bad"), False), (Cancelled("stop"), True), (KeyboardInterrupt(), True)],
)
def test_in_flight_keeps_the_finder_only_when_the_create_was_cancelled(error: BaseException | None, kept: bool) -> None:
    registered: list[object] = []

    def finder() -> list[str]:
        return ["b-1"]

    phase = _phase()
    expected = pytest.raises(type(error)) if error is not None else contextlib.nullcontext()
    with expected, phase.in_flight(registered.append, finder):
        assert registered == [finder]
        if error is not None:
            raise error
    assert registered == ([finder] if kept else [finder, None])


def test_an_ambiguous_failure_adopts_what_the_server_made() -> None:
    phase = _phase()
    sent: list[int] = []

    def send() -> str:
        sent.append(1)
        raise ServerError("502")

    assert phase.create_safely("build", send, lambda: ["b-made"]) == "b-made"
    assert len(sent) == 1


def test_an_ambiguous_failure_with_nothing_made_is_sent_again_up_to_the_limit() -> None:
    phase = _phase()
    sent: list[int] = []

    def send() -> str:
        sent.append(1)
        raise ApiConnectionError("reset")

    with pytest.raises(ApiConnectionError):
        phase.create_safely("build", send, lambda: [])
    assert len(sent) == CREATE_ATTEMPTS
    assert len(phase.token.sleeps) == CREATE_ATTEMPTS - 1  # type: ignore[attr-defined]


def test_without_a_finder_an_ambiguous_failure_is_raised_at_once() -> None:
    phase = _phase()

    def send() -> str:
        raise ServerError("500")

    with pytest.raises(ServerError):
        phase.create_safely("deployment", send, None)


def test_a_clear_refusal_is_never_retried() -> None:
    phase = _phase()
    sent: list[int] = []

    def send() -> str:
        sent.append(1)
        raise ValidationError("image_name: required")

    with pytest.raises(ValidationError):
        phase.create_safely("build", send, lambda: ["never"])
    assert len(sent) == 1


def test_a_cancellation_does_not_wait_for_a_request_that_hangs() -> None:
    """The run's cleanup starts at once; the hanging request is left to end with the process."""
    phase = _phase()
    release = threading.Event()
    started = threading.Event()

    def hanging() -> str:
        started.set()
        release.wait(30)
        return "too late"

    def cancel_once_started() -> None:
        started.wait(5)
        phase.token.cancel("stop")

    threading.Thread(target=cancel_once_started).start()
    try:
        with pytest.raises(Cancelled, match="stop"):
            phase.unless_cancelled(hanging)
        assert started.is_set() and not release.is_set()
    finally:
        release.set()


def test_unless_cancelled_hands_back_results_and_errors() -> None:
    phase = _phase()
    assert phase.unless_cancelled(lambda: 42) == 42

    def fail() -> int:
        raise ServerError("502")

    with pytest.raises(ServerError):
        phase.unless_cancelled(fail)


def test_the_fake_client_offers_what_the_phases_call() -> None:
    """mypy checks this assignment: FakeClient must satisfy the phases' ApiClient protocol."""
    client: ApiClient = FakeClient()
    assert client.list_deployments(preview_label="pr-7") is not None
