"""The emulator's fault injection (docs/emulator.md#fault-specs), from `--fault`-style config and `POST
/_emulator/faults`."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import scale_gp_beta

from tests.support import agent_yaml


def statuses(emulator: Any, count: int) -> list[int]:
    return [requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers).status_code for _ in range(count)]


def test_http_500_share_is_reproducible_with_a_seed(emulator_factory: Any) -> None:
    first = statuses(emulator_factory(faults=["http-500=0.5"], seed=11), 40)
    second = statuses(emulator_factory(faults=["http-500=0.5"], seed=11), 40)
    assert first == second
    assert set(first) == {200, 500}
    assert statuses(emulator_factory(faults=["http-500=1"]), 5) == [500] * 5
    assert statuses(emulator_factory(faults=["http-500=0"]), 5) == [200] * 5


def test_http_500_answers_json_detail(emulator_factory: Any) -> None:
    emulator = emulator_factory(faults=["http-500=1"])
    response = requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers)
    assert response.status_code == 500 and "http-500" in response.json()["detail"]


def test_rate_limit_answers_every_nth_request_with_retry_after(emulator: Any) -> None:
    emulator.set_faults(["rate-limit=3"])
    responses = [requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers) for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
    assert responses[2].headers["Retry-After"] == "1"
    emulator.set_faults(["rate-limit=3"])  # setting faults restarts the count
    statuses(emulator, 2)
    # The official SDK's third request is refused; it honours Retry-After and gets through on its retry.
    assert emulator.sdk(max_retries=2).build.list().items == []
    assert [r["status"] for r in emulator.state()["requests"][-2:]] == [429, 200]


def test_faults_never_touch_the_emulator_endpoints(emulator: Any) -> None:
    emulator.set_faults(["rate-limit=1", "slow=0"])
    assert requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers).status_code == 429
    for _ in range(3):
        assert requests.get(f"{emulator.url}/_emulator/state").status_code == 200
    emulator.set_faults([])
    assert requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers).status_code == 200
    statuses_seen = [r["status"] for r in emulator.state()["requests"]]
    assert statuses_seen == [429, 200]  # /_emulator calls are not recorded either


def test_sse_drop_after_cuts_each_stream_n_lines_further(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    with make_context({"Dockerfile": "FROM alpine\nRUN echo a\nRUN echo b\n"}).open("rb") as handle:
        build = client.build.create(image_name="echo", agent_name="echo-bot", context_archive=handle)
    full = [chunk.line for chunk in client.build.logs(build.id)]
    emulator.set_faults(["sse-drop-after=2"])
    assert [chunk.line for chunk in client.build.logs(build.id)] == full[:2]
    # each reconnect replays from the first line and brings two lines more than any connection before it
    assert [chunk.line for chunk in client.build.logs(build.id)] == full[:4]
    assert [chunk.line for chunk in client.build.logs(build.id)] == full[:6]
    emulator.set_faults([])
    assert [chunk.line for chunk in client.build.logs(build.id)] == full


def test_slow_delays_each_answer(emulator: Any) -> None:
    emulator.set_faults(["slow=0.4"])
    started = time.monotonic()
    assert requests.get(f"{emulator.url}/v5/builds", headers=emulator.headers).status_code == 200
    assert time.monotonic() - started >= 0.4  # a lower bound the fault guarantees, not a performance claim


def test_lose_create_response_stores_the_build_but_cuts_the_connection(emulator: Any, make_context: Any) -> None:
    emulator.set_faults(["lose-create-response"])
    client = emulator.sdk()
    archive = make_context({"Dockerfile": "FROM alpine\n"})
    with archive.open("rb") as handle, pytest.raises(scale_gp_beta.APIConnectionError):
        client.build.create(image_name="echo", agent_name="echo-bot", context_archive=handle, source_commit="c1")
    state = emulator.state()
    assert [b["source_commit"] for b in state["builds"]] == ["c1"]
    assert state["requests"][-1]["status"] == "connection-cut"
    [found] = client.build.list(source_commit="c1")  # how a careful client recovers
    with archive.open("rb") as handle:  # only the next create loses its answer
        again = client.build.create(image_name="echo", agent_id=found.agent_id, context_archive=handle)
    assert again.agent_id == found.agent_id


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_deploy_fail_ends_failed_with_crashloop_events_and_error_logs(emulator: Any) -> None:
    emulator.set_faults(["deploy-fail"])
    client = emulator.sdk()
    build = client.build.create(image_name="echo", agent_name="echo-bot", image_url="r.example/echo:1")
    manifest, env = agent_yaml()
    deploy = client.deploy.create(manifest_file=manifest, environment_config=env, build_id=build.id or build.build_id)
    deadline = time.monotonic() + 30
    while client.deploy.retrieve(deploy.id).status.lower() != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    done = client.deploy.retrieve(deploy.id)
    assert done.status == ("failed" if emulator.dialect == "legacy" else "FAILED")
    warnings = [e for e in done.deploy_events if e.type == "Warning"]
    assert any(e.reason == "CrashLoopBackOff" for e in warnings)
    errors = [line for line in client.deploy.logs(deploy.id, limit=500).lines if line.log_level == "ERROR"]
    assert len(errors) >= 2
    assert {e.agent_name for e in client.build.list_undeployed()} == {"echo-bot"}


def test_faults_from_the_config_and_the_endpoint(emulator_factory: Any) -> None:
    emulator = emulator_factory(faults=["rate-limit=2", "deploy-fail"])
    listed = requests.get(f"{emulator.url}/_emulator/faults").json()["faults"]
    assert listed == ["rate-limit=2", "deploy-fail"]
    answer = requests.post(f"{emulator.url}/_emulator/faults", json=["slow=0.1", "http-500=0.25"])
    assert answer.json() == {"faults": ["http-500=0.25", "slow=0.1"]}
    assert requests.post(f"{emulator.url}/_emulator/faults", json=[]).json() == {"faults": []}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (["nonsense"], "unknown fault"),
        (["http-500=2"], "between 0 and 1"),
        (["rate-limit=0"], "at least 1"),
        (["rate-limit"], "needs a value"),
        (["slow=abc"], "is not a float"),
        (["deploy-fail=1"], "takes no value"),
        ({"faults": []}, "send a JSON list"),
        ([3], "fault specs are strings"),
    ],
)
def test_bad_fault_specs_are_400(emulator: Any, body: Any, detail: str) -> None:
    emulator.set_faults(["rate-limit=5"])
    response = requests.post(f"{emulator.url}/_emulator/faults", json=body)
    assert response.status_code == 400 and detail in response.json()["detail"]
    assert requests.get(f"{emulator.url}/_emulator/faults").json()["faults"] == ["rate-limit=5"]  # unchanged
