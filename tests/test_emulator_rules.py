"""Table tests of the emulator's pure rules: Dockerfile parsing, RUN simulation, labels, faults, log plans."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sgp_action.emulator.builds import dockerfile_instructions, human_size, plan_logs, simulate_run
from sgp_action.emulator.deploys import parse_timestamp, sanitize_label
from sgp_action.emulator.faults import FaultSet, FaultSpecError, parse_faults


@pytest.mark.parametrize(
    ("text", "instructions"),
    [
        ("FROM alpine\n", ["FROM alpine"]),
        ("# syntax=docker/dockerfile:1\nfrom alpine\n\n  run echo hi  \n", ["FROM alpine", "RUN echo hi"]),
        ("RUN a \\\n  && b \\\n  # inside\n  && c\n", ["RUN a && b && c"]),
        ("RUN a \\\n\n  b\nCMD x\n", ["RUN a b", "CMD x"]),
        ("RUN trailing \\\n", ["RUN trailing"]),
        ("# only comments\n\n", []),
    ],
)
def test_dockerfile_instructions(text: str, instructions: list[str]) -> None:
    assert dockerfile_instructions(text) == instructions


@pytest.mark.parametrize(
    ("arguments", "output", "code", "shown"),
    [
        ('echo "hello   world"', ["hello   world"], 0, '/bin/sh -c echo "hello   world"'),
        ("echo 'a' b && echo c", ["a b", "c"], 0, "/bin/sh -c echo 'a' b && echo c"),
        ("echo x; false; echo y", ["x"], 1, "/bin/sh -c echo x; false; echo y"),
        ("exit 42", [], 42, "/bin/sh -c exit 42"),
        ("exit 0", [], 0, "/bin/sh -c exit 0"),
        ("exit", [], 0, "/bin/sh -c exit"),
        ("false || true", [], 0, "/bin/sh -c false || true"),
        ("pip install -r requirements.txt", [], 0, "/bin/sh -c pip install -r requirements.txt"),
        ('["echo", "exec form"]', ["exec form"], 0, "echo exec form"),
        ('["false"]', [], 1, "false"),
        ("echo 'unterminated", [], 0, "/bin/sh -c echo 'unterminated"),
    ],
)
def test_simulate_run(arguments: str, output: list[str], code: int, shown: str) -> None:
    outcome = simulate_run(arguments)
    assert (outcome.output, outcome.exit_code, outcome.shown_command) == (output, code, shown)


@pytest.mark.parametrize(
    ("label", "sanitized"),
    [
        ("pr-482", "pr-482"),
        ("PR 482", "pr-482"),
        ("a__b..c", "a-b-c"),
        ("-x-", "x"),
        ("!!!", ""),
        ("a" * 30 + "b", "a" * 30),
        ("a" * 29 + "-b", "a" * 29),
        ("feature/" + "x" * 40, "feature-" + "x" * 22),
    ],
)
def test_sanitize_label(label: str, sanitized: str) -> None:
    assert sanitize_label(label) == sanitized


def test_parse_timestamp() -> None:
    utc = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_timestamp("2030-01-02T03:04:05Z") == utc
    assert parse_timestamp("2030-01-02T03:04:05") == utc
    assert parse_timestamp("2030-01-02T05:04:05+02:00") == utc


@pytest.mark.parametrize(
    ("specs", "faults"),
    [
        ([], FaultSet()),
        (["http-500=0.3", "slow=1.5"], FaultSet(http_500=0.3, slow=1.5)),
        ([" rate-limit = 4 ", "sse-drop-after=2"], FaultSet(rate_limit=4, sse_drop_after=2)),
        (["lose-create-response", "deploy-fail"], FaultSet(lose_create_response=True, deploy_fail=True)),
    ],
)
def test_parse_faults(specs: list[str], faults: FaultSet) -> None:
    parsed = parse_faults(specs)
    assert parsed == faults
    assert parse_faults(parsed.specs()) == parsed


@pytest.mark.parametrize("spec", ["http-500=-0.1", "rate-limit=2.5", "sse-drop-after=0", "slow=", "boom"])
def test_parse_faults_refuses(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_faults([spec])


@pytest.mark.parametrize(("size", "shown"), [(0, "0B"), (999, "999B"), (1500, "1.50kB"), (2_500_000, "2.50MB")])
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_log_plan_is_the_same_for_the_same_build() -> None:
    args = ("FROM alpine\nRUN echo hi\n", None, 10, "echo:1", "reg/echo", "build_1")
    assert plan_logs(*args) == plan_logs(*args)
    lines, ok = plan_logs(*args)
    assert ok and lines.count("hi") == 1
