"""The emulator's build endpoints, driven by the official SDK (scale-gp-beta 0.7.0) as a conformance client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
import scale_gp_beta

from tests.support import error_detail

DOCKERFILE = """# syntax=docker/dockerfile:1
FROM python:3.12-slim
# a comment between instructions
RUN echo "hello world" && \\
    # a comment inside a continuation
    echo 'second line'
COPY . /app
CMD ["python", "-m", "app"]
"""
TERMINAL = {"success", "failed", "cancelled"}


def build_id(build: Any) -> str:
    """`id`, or `build_id` in the legacy dialect (the SDK keeps unknown fields as extras)."""
    return str(build.id or build.build_id)


def build_status(build: Any) -> str:
    return str(build.build_status or build.status)


def wait_build(client: Any, ident: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        build = client.build.retrieve(ident)
        if build_status(build) in TERMINAL or time.monotonic() > deadline:
            return build
        time.sleep(0.05)


def create(client: Any, archive: Path, **fields: Any) -> Any:
    fields.setdefault("image_name", "echo")
    if "agent_id" not in fields:
        fields.setdefault("agent_name", "echo-bot")
    with archive.open("rb") as handle:
        return client.build.create(context_archive=handle, **fields)


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_create_poll_and_stream_logs(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    archive = make_context({"Dockerfile": DOCKERFILE, "app/main.py": "print('hi')\n"})
    build = create(client, archive, image_tag="v1")
    assert build_status(build) == "queued"
    assert build.agent_name == "echo-bot" and build.image_name == "echo" and build.image_tag == "v1"
    assert build.account_id == emulator.account_id and build.created_by.type == "service_account"
    assert build.object == "agentex_cloud_build" and build_id(build).startswith("build_")
    if emulator.dialect == "legacy":
        assert build.id is None and build.build_status is None  # legacy: build_id and status instead
    lines = [chunk.line for chunk in client.build.logs(build_id(build))]
    size = archive.stat().st_size
    assert lines[0] == f"Received build context: {size}B ({size} bytes)"
    steps = [line for line in lines if line.startswith("Step ")]
    assert steps == [
        "Step 1/4 : FROM python:3.12-slim",
        "Step 2/4 : RUN echo \"hello world\" && echo 'second line'",
        "Step 3/4 : COPY . /app",
        'Step 4/4 : CMD ["python", "-m", "app"]',
    ]
    assert lines.index("hello world") == lines.index(steps[1]) + 2
    assert lines.index("second line") == lines.index("hello world") + 1
    assert "Successfully tagged echo:v1" in lines
    assert any(line.startswith("The push refers to repository [") for line in lines)
    assert lines[-1].startswith("v1: digest: sha256:")
    done = wait_build(client, build_id(build))
    assert build_status(done) == "success"
    assert done.image_url and done.image_url.endswith("/echo:v1")
    assert done.build_start_time <= done.build_end_time


@pytest.mark.parametrize("emulator", [{"build_seconds": 1.5}], indirect=True)
def test_status_goes_queued_running_success(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    build = create(client, make_context({"Dockerfile": "FROM alpine\n"}))
    seen = [build.build_status]
    while seen[-1] not in TERMINAL:
        status = client.build.retrieve(build.id).build_status
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.02)
    assert seen == ["queued", "running", "success"]


@pytest.mark.parametrize(
    ("run", "shown", "code"),
    [
        ("RUN exit 3", "/bin/sh -c exit 3", 3),
        ("RUN false", "/bin/sh -c false", 1),
        ("RUN echo before && exit 7", "/bin/sh -c echo before && exit 7", 7),
        ('RUN ["sh", "-c", "exit 2"]', "sh -c exit 2", 2),
    ],
)
def test_failing_run_fails_the_build_at_that_step(
    emulator: Any, make_context: Any, run: str, shown: str, code: int
) -> None:
    client = emulator.sdk()
    archive = make_context({"Dockerfile": f"FROM alpine\n{run}\nRUN echo never\n"})
    build = create(client, archive)
    lines = [chunk.line for chunk in client.build.logs(build.id)]
    assert lines[-1] == f"The command '{shown}' returned a non-zero code: {code}"
    assert "Step 2/3 : " + run in lines and not any(line.startswith("Step 3/3") for line in lines)
    assert "never" not in lines
    assert wait_build(client, build.id).build_status == "failed"


def test_exit_zero_succeeds(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    build = create(client, make_context({"Dockerfile": "FROM alpine\nRUN exit 0\n"}))
    assert wait_build(client, build.id).build_status == "success"


@pytest.mark.parametrize(
    ("files", "raw", "message"),
    [
        ({"app.py": "x = 1\n"}, None, "ERROR: the build context has no Dockerfile at its root"),
        ({"sub/Dockerfile": "FROM alpine\n"}, None, "ERROR: the build context has no Dockerfile at its root"),
        (None, b"this is not a tarball", "ERROR: the build context is not a gzipped tar archive"),
    ],
)
def test_bad_context_fails_with_a_log_line(
    emulator: Any, make_context: Any, files: Any, raw: bytes | None, message: str
) -> None:
    client = emulator.sdk()
    build = create(client, make_context(files, raw=raw))
    lines = [chunk.line for chunk in client.build.logs(build.id)]
    assert lines[-1].startswith(message)
    assert wait_build(client, build.id).build_status == "failed"


def test_dockerfile_under_dot_slash_is_at_the_root(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    build = create(client, make_context({"./Dockerfile": "FROM alpine\n"}))
    assert wait_build(client, build.id).build_status == "success"


def test_source_fields_are_stored_and_filterable(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    archive = make_context({"Dockerfile": "FROM alpine\n"})
    source = {
        "source_commit": "a" * 40,
        "source_ref": "main",
        "source_repo": "example.org/team/agents",
        "source_subpath": "agents/echo-bot",
    }
    first = create(client, archive, source_dirty=False, working_tree_hash="f" * 64, **source)
    second = create(client, archive, agent_id=first.agent_id, source_dirty=True, source_commit="b" * 40)
    got = client.build.retrieve(first.id)
    assert {k: getattr(got, k) for k in source} == source
    assert got.source_dirty is False and got.working_tree_hash == "f" * 64
    assert client.build.retrieve(second.id).source_dirty is True
    assert [b.id for b in client.build.list(source_commit="a" * 40)] == [first.id]
    assert [b.id for b in client.build.list(working_tree_hash="f" * 64)] == [first.id]
    assert {b.id for b in client.build.list(agent_name="echo-bot")} == {first.id, second.id}
    assert list(client.build.list(agent_name="other-bot")) == []


def test_agent_name_must_be_unused_in_the_current_dialect(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    archive = make_context({"Dockerfile": "FROM alpine\n"})
    first = create(client, archive)
    with pytest.raises(scale_gp_beta.ConflictError) as conflict:
        create(client, archive)
    assert "already in use" in error_detail(conflict.value)
    again = create(client, archive, agent_id=first.agent_id)
    assert again.agent_name == "echo-bot" and again.agent_id == first.agent_id
    with pytest.raises(scale_gp_beta.NotFoundError):
        create(client, archive, agent_id="00000000-0000-0000-0000-000000000000")
    assert len(emulator.state()["builds"]) == 2


@pytest.mark.parametrize("emulator", ["legacy"], indirect=True)
def test_legacy_dialect_allows_agent_name_on_every_build(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    archive = make_context({"Dockerfile": "FROM alpine\n"})
    first, second = create(client, archive), create(client, archive)
    assert first.agent_id == second.agent_id and first.build_id != second.build_id
    with pytest.raises(scale_gp_beta.NotFoundError):
        create(client, archive, agent_id="00000000-0000-0000-0000-000000000000")


VALIDATION = [
    ({"image_url": None, "archive": False}, "exactly one image source"),
    ({"image_url": "registry.example/echo:1"}, "exactly one image source"),
    ({"agent_name": None}, "exactly one agent identifier"),
    ({"agent_id": "0000"}, "exactly one agent identifier"),
    ({"image_name": ""}, "image_name is required"),
    ({"platform": "windows/amd64"}, "platform must be one of"),
    ({"build_args": "KEY=VALUE"}, "build_args must be a JSON object"),
    ({"build_args": '["KEY"]'}, "build_args must be a JSON object of strings"),
    ({"build_args": '{"KEY": 1}'}, "build_args must be a JSON object of strings"),
    ({"empty": True}, "context_archive is empty"),
]


@pytest.mark.parametrize(("change", "detail"), VALIDATION)
def test_create_validation(emulator: Any, make_context: Any, change: dict[str, Any], detail: str) -> None:
    client = emulator.sdk()
    fields: dict[str, Any] = {"image_name": "echo", "agent_name": "echo-bot"}
    archive = make_context(raw=b"") if change.pop("empty", False) else make_context({"Dockerfile": "FROM alpine\n"})
    with_archive = change.pop("archive", True)
    fields.update(change)
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(scale_gp_beta.BadRequestError) as refused:
        if with_archive:
            with archive.open("rb") as handle:
                client.build.create(context_archive=handle, **fields)
        else:
            client.build.create(**fields)
    assert detail in error_detail(refused.value)
    assert emulator.state()["builds"] == []


@pytest.mark.parametrize(
    ("data", "files", "detail"),
    [
        ({"source_dirty": "maybe"}, "archive", "source_dirty must be 'true' or 'false'"),
        ({"image_name": ["a", "b"]}, "archive", "'image_name' was sent 2 times"),
        ({"context_archive": "inline text"}, "none", "context_archive must be a file part"),
        ({}, "extra", "unexpected file part 'extra'"),
    ],
)
def test_create_validation_raw(emulator: Any, make_context: Any, data: dict[str, Any], files: str, detail: str) -> None:
    form = {"image_name": "echo", "agent_name": "echo-bot", **data}
    archive = make_context({"Dockerfile": "FROM alpine\n"})
    with archive.open("rb") as handle:
        # Without a file, a dummy text part still makes requests send multipart/form-data.
        parts: dict[str, Any] = {"note": (None, "x")}
        if files != "none":
            parts = {"context_archive": ("context.tar.gz", handle, "application/gzip")}
        if files == "extra":
            parts["extra"] = ("extra.bin", b"123", "application/octet-stream")
        response = requests.post(f"{emulator.url}/v5/builds", data=form, files=parts, headers=emulator.headers)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_image_url_registration_is_successful_at_once(emulator: Any) -> None:
    client = emulator.sdk()
    build = client.build.create(image_name="echo", agent_name="echo-bot", image_url="registry.example/echo:1")
    assert build.build_status == "success" and build.image_url == "registry.example/echo:1"
    assert [chunk.line for chunk in client.build.logs(build.id)] == [
        "Registered existing image registry.example/echo:1"
    ]


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_list_pages_sorts_and_counts(emulator: Any) -> None:
    client = emulator.sdk()
    first = client.build.create(image_name="echo", agent_name="echo-bot", image_url="r.example/echo:0")
    made = [build_id(first)]
    for n in range(1, 5):
        build = client.build.create(image_name="echo", agent_id=first.agent_id, image_url=f"r.example/echo:{n}")
        made.append(build_id(build))
    page = client.build.list(limit=2)
    assert [build_id(b) for b in page.items] == made[:2] and page.has_more is True
    raw = requests.get(f"{emulator.url}/v5/builds", params={"limit": 2}, headers=emulator.headers).json()
    assert raw["object"] == "list" and raw["total"] == 5 and raw["limit"] == 2
    if emulator.dialect == "current":
        assert [b.id for b in client.build.list(limit=2)] == made  # the SDK's auto-paging follows starting_after
    else:
        # Legacy items have build_id, not id, so the SDK's auto-paging stops after one page; page by hand.
        assert len(list(client.build.list(limit=2))) == 2
    seen: list[str] = []
    after = None
    while True:
        page = client.build.list(limit=2, **({"starting_after": after} if after else {}))
        seen += [build_id(b) for b in page.items]
        if not page.has_more:
            break
        after = seen[-1]
    assert seen == made
    desc = client.build.list(limit=10, sort_order="desc", sort_by="created_at")
    assert [build_id(b) for b in desc.items] == made[::-1] and desc.has_more is False
    before = client.build.list(limit=2, ending_before=made[3])
    assert [build_id(b) for b in before.items] == made[1:3]


def test_list_rejects_bad_paging_parameters(emulator: Any) -> None:
    client = emulator.sdk()
    with pytest.raises(scale_gp_beta.UnprocessableEntityError):
        client.build.list(limit=0)
    with pytest.raises(scale_gp_beta.UnprocessableEntityError):
        client.build.list(sort_by="nonsense")
    with pytest.raises(scale_gp_beta.BadRequestError):
        client.build.list(starting_after="build_unknown")


@pytest.mark.parametrize("emulator", [{"build_seconds": 3.0}], indirect=True)
def test_cancel_passes_through_cancelling_to_cancelled(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    build = create(client, make_context({"Dockerfile": "FROM alpine\nRUN echo hi\n"}))
    response = client.build.with_raw_response.cancel(build.id)
    assert response.status_code == 202
    assert response.parse().build_status in ("queued", "running")  # the record as it stood
    seen: list[str] = []
    while not seen or seen[-1] != "cancelled":
        status = client.build.retrieve(build.id).build_status
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    assert seen[-2:] == ["cancelling", "cancelled"]
    lines = [chunk.line for chunk in client.build.logs(build.id)]
    assert lines[-1] == "Build cancelled by request" and not any("Successfully" in line for line in lines)
    assert client.build.with_raw_response.cancel(build.id).status_code == 202  # already terminal: accepted, no-op
    assert client.build.retrieve(build.id).build_status == "cancelled"
    with pytest.raises(scale_gp_beta.NotFoundError):
        client.build.cancel("build_unknown")


def test_cancel_of_a_finished_build_changes_nothing(emulator: Any) -> None:
    client = emulator.sdk()
    build = client.build.create(image_name="echo", agent_name="echo-bot", image_url="r.example/echo:1")
    assert client.build.with_raw_response.cancel(build.id).status_code == 202
    assert client.build.retrieve(build.id).build_status == "success"


def test_unknown_build_is_404(emulator: Any) -> None:
    client = emulator.sdk()
    with pytest.raises(scale_gp_beta.NotFoundError):
        client.build.retrieve("build_unknown")
    with pytest.raises(scale_gp_beta.NotFoundError):
        list(client.build.logs("build_unknown"))


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_undeployed_lists_agents_as_a_bare_array(emulator: Any) -> None:
    client = emulator.sdk()
    echo = client.build.create(image_name="echo", agent_name="echo-bot", image_url="r.example/echo:1")
    latest = client.build.create(image_name="echo", agent_id=echo.agent_id, image_url="r.example/echo:2")
    client.build.create(image_name="other", agent_name="other-bot", image_url="r.example/other:1")
    raw = requests.get(f"{emulator.url}/v5/builds/undeployed", headers=emulator.headers).json()
    assert isinstance(raw, list)
    entries = {entry.agent_name: entry for entry in client.build.list_undeployed()}
    assert set(entries) == {"echo-bot", "other-bot"}
    assert entries["echo-bot"].total_builds == 2 and entries["other-bot"].total_builds == 1
    assert build_id(entries["echo-bot"].latest_build) == build_id(latest)
