"""manifest.yaml and environments.yaml: validation messages that name the file and the key, names, selection."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sgp_action.errors import ManifestError
from sgp_action.manifest import MAX_YAML_BYTES, load_environments, load_manifest, select_environment


def base_manifest() -> dict[str, Any]:
    return {
        "build": {
            "context": {
                "root": "../..",
                "include_paths": ["agents/echo"],
                "dockerfile": "agents/echo/Dockerfile",
                "dockerignore": "agents/echo/.dockerignore",
            }
        },
        "agent": {"name": "echo-bot", "acp_type": "sync", "description": "echoes"},
        "deployment": {"image": {"repository": "gcr.io/team/images/echo-image", "tag": "v1"}},
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    agent = tmp_path / "agents" / "echo"
    agent.mkdir(parents=True)
    (agent / "Dockerfile").write_text("FROM python:3.12\n")
    (agent / ".dockerignore").write_text("**/__pycache__\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "README.md").write_text("root file\n")
    return tmp_path


def write(repo: Path, data: Any, name: str = "manifest.yaml") -> Path:
    path = repo / "agents" / "echo" / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_valid_manifest(repo: Path) -> None:
    path = write(repo, base_manifest())
    manifest = load_manifest(path)
    assert manifest.agent_name == "echo-bot"
    assert manifest.image_name == "echo-image"
    assert manifest.image_tag == "v1"
    assert manifest.context_root == repo.resolve()
    assert manifest.include_paths == ("agents/echo",)
    assert manifest.dockerfile == "agents/echo/Dockerfile"
    assert manifest.dockerignore == "agents/echo/.dockerignore"
    assert manifest.text == path.read_text()
    assert manifest.data["agent"]["name"] == "echo-bot"
    assert manifest.directory == path.parent.resolve()
    assert manifest.environments_path == path.parent.resolve() / "environments.yaml"


@pytest.mark.parametrize(
    ("deployment", "image_name", "image_tag"),
    [
        ({"image": {"repository": "echo-image"}}, "echo-image", None),
        ({"image": {"repository": "registry.example/a/b/", "tag": "latest"}}, "b", "latest"),
        ({"image": {"repository": "x", "tag": 3}}, "x", "3"),
        ({}, "echo-bot", None),  # trap T19: no repository -> agent.name, never "<repository>"
        (None, "echo-bot", None),
    ],
)
def test_image_name_and_tag(repo: Path, deployment: Any, image_name: str, image_tag: str | None) -> None:
    data = base_manifest()
    data["deployment"] = deployment
    manifest = load_manifest(write(repo, data))
    assert (manifest.image_name, manifest.image_tag) == (image_name, image_tag)


def test_include_paths_normalised_and_deduplicated(repo: Path) -> None:
    data = base_manifest()
    data["build"]["context"]["include_paths"] = ["./agents/echo/", "agents//echo", "lib", "."]
    assert load_manifest(write(repo, data)).include_paths == ("agents/echo", "lib", ".")


def edit(path: str, value: Any) -> Any:
    """A change to base_manifest(): set the dotted key (None deletes it)."""

    def apply(data: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
        return data

    return apply


MANIFEST_ERRORS = [
    (edit("build", None), "`build` is required"),
    (edit("build.context", None), "`build.context` is required"),
    (edit("build.context", "x"), "`build.context` must be a mapping"),
    (edit("build.context.root", None), "`build.context.root` is required"),
    (edit("build.context.root", "missing"), "`build.context.root` must name a directory"),
    (edit("build.context.include_paths", "agents/echo"), "must be a list of directories"),
    (edit("build.context.include_paths", ["../.."]), "include_paths[0]` must stay inside build.context.root"),
    (edit("build.context.include_paths", ["/etc"]), "must be relative to build.context.root, not absolute"),
    (edit("build.context.include_paths", ["README.md"]), "include_paths[0]` must be a directory"),
    (edit("build.context.include_paths", ["lib", "nope"]), "include_paths[1]` must be a directory"),
    (edit("build.context.include_paths", [3]), "include_paths[0]` must be a string"),
    (edit("build.context.dockerfile", None), "`build.context.dockerfile` is required"),
    (edit("build.context.dockerfile", "agents/echo/Nope"), "`build.context.dockerfile` must name a file"),
    (edit("build.context.dockerfile", "agents/echo"), "`build.context.dockerfile` must name a file"),
    (edit("build.context.dockerignore", "agents/echo/.nope"), "`build.context.dockerignore` names"),
    (edit("agent", None), "`agent` is required"),
    (edit("agent.name", None), "`agent.name` is required"),
    (edit("agent.name", "Echo_Bot"), "`agent.name` must match ^[a-z0-9-]+$"),
    (edit("agent.name", "echo bot"), "must match ^[a-z0-9-]+$"),
    (edit("agent.name", 12), "`agent.name` must be a string"),
    (edit("agent.acp_type", "streaming"), "`agent.acp_type` must be one of sync, async, agentic"),
    (edit("agent.acp_type", None), "`agent.acp_type` is required"),
    (edit("agent.description", None), "`agent.description` is required"),
    (edit("agent.agent_input_type", "xml"), "`agent.agent_input_type` must be one of text, json"),
    (edit("agent.env", {"PORT": 8000}), "`agent.env.PORT` must be a string"),
    (edit("agent.credentials", "x"), "`agent.credentials` must be a list"),
    (edit("deployment.image", ["x"]), "`deployment.image` must be a mapping"),
    (edit("deployment.image.repository", ["x"]), "`deployment.image.repository` must be a string"),
    (edit("local_development", {"agent": {"port": 0}}), "`local_development.agent.port` must be a port"),
]


@pytest.mark.parametrize(("change", "message"), MANIFEST_ERRORS)
def test_manifest_errors(repo: Path, change: Any, message: str) -> None:
    path = write(repo, change(base_manifest()))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("build: [unclosed\n", "is not valid YAML (line 2"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("", "must be a YAML mapping"),
    ],
)
def test_manifest_unreadable(repo: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message.replace("(", r"\(")):
        load_manifest(write(repo, text))


def test_manifest_missing_or_binary(repo: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(repo / "nope.yaml")
    path = repo / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(path)


def padded_to(path: Path, text: bytes, size: int) -> Path:
    """Write `text` padded with a trailing comment to exactly `size` bytes (still valid YAML) to `path`."""
    path.write_bytes(text + b"#" + b"x" * (size - len(text) - 2) + b"\n")
    assert path.stat().st_size == size
    return path


@pytest.mark.parametrize("kind", ["manifest", "environments"])
def test_yaml_files_are_capped_before_parsing(repo: Path, kind: str) -> None:
    load = load_manifest if kind == "manifest" else load_environments
    path = write(repo, base_manifest()) if kind == "manifest" else envs(repo, {"prod": PROD})
    text = path.read_bytes()
    if kind == "manifest":  # the limit itself is accepted (parsing 1 MiB takes PyYAML most of a second)
        assert load(padded_to(path, text, MAX_YAML_BYTES)).text == path.read_text()
    with pytest.raises(ManifestError, match=r"is over the 1 MiB limit") as caught:
        load(padded_to(path, text, MAX_YAML_BYTES + 1))
    assert str(path) in str(caught.value)
    assert MAX_YAML_BYTES == 1024 * 1024


def test_fifo_is_refused_without_blocking(repo: Path) -> None:
    """A named pipe as the manifest: open() for reading would wait forever for a writer."""
    fifo = repo / "fifo.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(fifo)
    assert time.monotonic() - started < 5


def test_newlines_read_as_text_mode_did(repo: Path) -> None:
    path = write(repo, base_manifest())
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_manifest(path).text == path.read_text()


# --- environments.yaml --------------------------------------------------------------------------------------

PROD = {"kubernetes": {"namespace": "team-echo"}, "auth": {"principal": {"service_account_id": "sa-1"}}}
DEV = {"environment": "dev", "auth": {"principal": {"user_id": "u-1", "account_id": "acc"}}}


def envs(repo: Path, environments: Any, **extra: Any) -> Path:
    return write(repo, {"schema_version": "v1", **extra, "environments": environments}, "environments.yaml")


def test_single_environment_sent_verbatim(repo: Path) -> None:
    path = envs(repo, {"prod": PROD})
    path.write_text("# comment kept\n" + path.read_text())
    loaded = load_environments(path)
    assert loaded.keys == ("prod",)
    assert loaded.select(None) == ("prod", path.read_text())
    assert select_environment(path, None) == ("prod", path.read_text())


def test_named_environment_sent_as_one_entry_file(repo: Path) -> None:
    loaded = load_environments(envs(repo, {"prod": PROD, "staging": DEV}))
    key, text = loaded.select("staging")
    assert key == "staging"
    assert yaml.safe_load(text) == {"schema_version": "v1", "environments": {"staging": DEV}}
    # Even a file with one environment gets the one-entry form when a name was given.
    single = load_environments(envs(repo, {"prod": PROD}))
    assert yaml.safe_load(single.select("prod")[1]) == {"schema_version": "v1", "environments": {"prod": PROD}}


def test_named_by_environment_field(repo: Path) -> None:
    loaded = load_environments(envs(repo, {"prod": PROD, "sandbox": DEV}))
    assert loaded.select("dev")[0] == "sandbox"
    twice = load_environments(envs(repo, {"a": DEV, "b": DEV}))
    with pytest.raises(ManifestError, match=r"target of several entries \(a, b\)"):
        twice.select("dev")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, r"holds 2 environments \(prod, staging\); choose one with the `environment` input"),
        ("", "holds 2 environments"),
        ("qa", r"no environment 'qa'; the file defines: prod, staging"),
    ],
)
def test_selection_errors(repo: Path, name: str | None, message: str) -> None:
    loaded = load_environments(envs(repo, {"prod": PROD, "staging": DEV}))
    with pytest.raises(ManifestError, match=message):
        loaded.select(name)


def bad(**changes: Any) -> dict[str, Any]:
    block: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in PROD.items()}
    block.update(changes)
    return {"prod": block}


ENV_ERRORS = [
    ({}, "`environments` must define at least one environment"),
    (None, "`environments` is required"),
    ({"prod": "x"}, "`environments.prod` must be a mapping"),
    (bad(auth=None), "`environments.prod.auth` is required"),
    (bad(auth={}), "`environments.prod.auth.principal` is required"),
    (bad(auth={"principal": {}}), "exactly one non-empty key of user_id / service_account_id (found none)"),
    (bad(auth={"principal": {"user_id": "", "account_id": "a"}}), "(found none)"),
    (bad(auth={"principal": {"user_id": "u", "service_account_id": "s"}}), "found ['user_id', 'service_account_id']"),
    (bad(kubernetes={}), "`environments.prod.kubernetes.namespace` is required"),
    (bad(kubernetes={"namespace": "Team_Echo"}), "`environments.prod.kubernetes.namespace` must be 1-63"),
    (bad(kubernetes={"namespace": "-team"}), "must be 1-63 characters"),
    (bad(kubernetes={"namespace": "a" * 64}), "must be 1-63 characters"),
    (bad(helm_overrides=[1]), "`environments.prod.helm_overrides` must be a mapping"),
    (bad(oci_registry={"provider": "gar"}), "`environments.prod.oci_registry.url` is required"),
    (bad(oci_registry={"url": "u", "provider": "ecr"}), "`environments.prod.oci_registry.provider` must be one of gar"),
    (bad(environment=3), "`environments.prod.environment` must be a string"),
]


@pytest.mark.parametrize(("environments", "message"), ENV_ERRORS)
def test_environment_errors(repo: Path, environments: Any, message: str) -> None:
    path = envs(repo, environments)
    with pytest.raises(ManifestError) as caught:
        load_environments(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_namespace_is_cleaned_before_checking(repo: Path) -> None:
    assert load_environments(envs(repo, bad(kubernetes={"namespace": "  Team-Echo.v2 "}))).keys == ("prod",)


def test_schema_version(repo: Path) -> None:
    with pytest.raises(ManifestError, match="`schema_version` must be v1, not 'v2'"):
        load_environments(envs(repo, {"prod": PROD}, schema_version="v2"))
    path = write(repo, {"environments": {"prod": PROD}}, "environments.yaml")
    assert load_environments(path).keys == ("prod",)
