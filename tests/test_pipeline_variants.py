"""The full preview, cleanup and teardown flows against every emulator variant, alone and all together.

Each variant is another plausible answer where the platform's documents are silent
(docs/sgp-api.md#assumptions-where-the-platforms-documents-are-silent). The runs are the real `sgp-action run`
pipeline in this process, with the build log stream cut every two lines (`sse-drop-after=2`) so that every reconnect
mode the emulator can play is met, and every build log line must be printed exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from sgp_action.demo import pull_request_event
from sgp_action.emulator.variants import VARIANT_NAMES
from tests.run_helpers import Workspace, build_log_lines, server_build_log
from tests.support import EmulatorHandle

EVERYTHING = sorted(set(VARIANT_NAMES) - {"delete-ended-409", "sse-tail"})
EVERYTHING_ELSE = sorted(set(VARIANT_NAMES) - {"delete-ended-404", "sse-resume"})
CASES = [[name] for name in VARIANT_NAMES] + [EVERYTHING, EVERYTHING_ELSE]


def set_variants(emulator: EmulatorHandle, names: list[str]) -> None:
    requests.post(f"{emulator.url}/_emulator/variants", json=names, timeout=10).raise_for_status()


@pytest.mark.parametrize("variants", CASES, ids=["+".join(names) for names in CASES])
def test_preview_cleanup_and_teardown_flows(
    variants: list[str], emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    emulator = emulator_factory(variants=variants, build_seconds=0.4, deploy_seconds=0.2)
    emulator.set_faults(["sse-drop-after=2"])
    workspace = Workspace(tmp_path, emulator)
    opened = pull_request_event(workspace.head_sha)

    first = workspace.run("pull_request", opened)
    assert (first.exit_code, first.result) == (0, "success"), first.log
    out = first.outputs
    assert out["deployment-status"] == "healthy" and out["build-status"] == "success"
    assert out["expires-at"].endswith("Z") and "+" not in out["expires-at"]
    assert "::warning" not in first.log, first.log

    # A second preview of the same PR keeps the first (replace-previous off): the sweep must find it replaced.
    second = workspace.run("pull_request", opened, replace_previous="false")
    assert (second.exit_code, second.result) == (0, "success"), second.log
    assert second.outputs["reused-build"] == "true" and "deleted" not in second.outputs

    swept = workspace.run("schedule", {"schedule": "0 3 * * *"})
    assert (swept.exit_code, swept.result) == (0, "success"), swept.log
    assert json.loads(swept.outputs["deleted"]) == [out["deployment-id"]]

    closed = dict(opened, action="closed")
    torn = workspace.run("pull_request", closed)
    assert (torn.exit_code, torn.result) == (0, "success"), torn.log
    assert json.loads(torn.outputs["deleted"]) == [second.outputs["deployment-id"]]

    # Every build log line exactly once, in order (the server's log read afresh, with the default answers).
    set_variants(emulator, [])
    assert build_log_lines(first.log) == server_build_log(emulator, out["build-id"])
    state = emulator.state()
    ours = [b for b in state["builds"] if b["id"] == out["build-id"]]
    assert len(ours) == 1 and ours[0]["image_tag"] == workspace.head_sha[:7]
    statuses = {d["id"]: d["status"] for d in state["deployments"]}
    assert statuses[out["deployment-id"]] == statuses[second.outputs["deployment-id"]] == "DELETED"
