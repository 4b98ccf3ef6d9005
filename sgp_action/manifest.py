"""Loading and validating an agent's `manifest.yaml` and `environments.yaml` (sgp-api.md sections 7 and 8).

The files are read as UTF-8 text and kept verbatim: the deploy API wants YAML *text* (trap T18), so the parsed data
is only used to validate early, with messages that name the file and the key to fix, what the server would
otherwise refuse late. Extra keys are ignored, as the agentex SDK's Pydantic models ignore them.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sgp_action.errors import ManifestError

log = logging.getLogger(__name__)

__all__ = ["Environments", "Manifest", "load_environments", "load_manifest", "select_environment"]

AGENT_NAME = re.compile(r"^[a-z0-9-]+$")
NAMESPACE = re.compile(r"^[a-z0-9.-]+$")
ACP_TYPES = ("sync", "async", "agentic")
INPUT_TYPES = ("text", "json")
PRINCIPAL_IDS = ("user_id", "service_account_id")
# A manifest or environments file is a few KB; PyYAML needs about 30 s and 150 MB for 50 MB of YAML.
MAX_YAML_BYTES = 1024 * 1024


def _read_text(path: Path, what: str) -> str:
    """The file as text (newlines as Python's text mode reads them), refused before parsing when too large."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path}: {what} is not a regular file; name the YAML file itself")
        if info.st_size > MAX_YAML_BYTES:
            raise _too_large(path, what)
        with open(path, "rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)  # the file may have grown since the stat
    except FileNotFoundError:
        raise ManifestError(f"{path}: {what} not found; check the path (relative to working-directory)") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise _too_large(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _too_large(path: Path, what: str) -> ManifestError:
    return ManifestError(
        f"{path}: {what} is over the {MAX_YAML_BYTES // (1024 * 1024)} MiB limit; it should be a few KB of YAML: "
        "check that the path names the right file"
    )


def _read_yaml(path: Path, what: str) -> tuple[str, Any]:
    text = _read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}: {what} is not valid YAML{where}: {problem}") from None
    return text, data


class _Checker:
    """Typed look-ups that raise a ManifestError naming the file and the dotted key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.path}: `{key}` {problem}")

    def mapping(self, data: Mapping[str, Any], key: str, dotted: str, *, required: bool) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(dotted, "is required (a mapping)")
            return None
        if not isinstance(value, dict):
            raise self.fail(dotted, f"must be a mapping, not {type(value).__name__}")
        return value

    def string(self, data: Mapping[str, Any], key: str, dotted: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(dotted, "is required (a string)")
            return None
        if not isinstance(value, str):
            raise self.fail(dotted, f"must be a string, not {type(value).__name__} ({value!r})")
        return value

    def choice(
        self, data: Mapping[str, Any], key: str, dotted: str, choices: tuple[str, ...], *, required: bool
    ) -> None:
        value = self.string(data, key, dotted, required=required)
        if value is not None and value not in choices:
            raise self.fail(dotted, f"must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.yaml; `text` is the file verbatim (what the deploy API receives)."""

    path: Path
    directory: Path
    text: str
    data: dict[str, Any]
    agent_name: str
    image_name: str
    image_tag: str | None
    context_root: Path
    include_paths: tuple[str, ...]
    dockerfile: str
    dockerignore: str | None

    @property
    def environments_path(self) -> Path:
        """Where the agentex tools look for the environments file: beside the manifest."""
        return self.directory / "environments.yaml"


def _relative(check: _Checker, value: str, dotted: str) -> str:
    """A `/` path relative to the context root, lexically normalised; absolute paths are refused."""
    if not value.strip():
        raise check.fail(dotted, "must not be empty")
    if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value):
        raise check.fail(dotted, f"must be relative to build.context.root, not absolute ({value!r})")
    return posixpath.normpath(value.replace("\\", "/"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_build(
    check: _Checker, build: dict[str, Any], directory: Path
) -> tuple[Path, tuple[str, ...], str, str | None]:
    context = check.mapping(build, "context", "build.context", required=True)
    assert context is not None
    root_text = check.string(context, "root", "build.context.root", required=True)
    assert root_text is not None
    root = (directory / root_text).resolve()
    if not root.is_dir():
        raise check.fail(
            "build.context.root", f"must name a directory; {root} is not one (it is relative to {directory})"
        )

    raw_includes = context.get("include_paths") or []
    if not isinstance(raw_includes, list):
        raise check.fail("build.context.include_paths", "must be a list of directories relative to build.context.root")
    includes: list[str] = []
    for index, item in enumerate(raw_includes):
        dotted = f"build.context.include_paths[{index}]"
        if not isinstance(item, str):
            raise check.fail(dotted, f"must be a string, not {type(item).__name__} ({item!r})")
        rel = _relative(check, item, dotted)
        target = root / rel
        if rel == ".." or rel.startswith("../") or not _inside(target.resolve(), root):
            raise check.fail(dotted, f"must stay inside build.context.root ({root}); {item!r} leaves it")
        if not target.is_dir():
            raise check.fail(dotted, f"must be a directory (agentex copies it recursively); {target} is not one")
        if rel not in includes:
            includes.append(rel)

    dockerfile_text = check.string(context, "dockerfile", "build.context.dockerfile", required=True)
    assert dockerfile_text is not None
    dockerfile = _relative(check, dockerfile_text, "build.context.dockerfile")
    if not (root / dockerfile).is_file():
        raise check.fail(
            "build.context.dockerfile", f"must name a file relative to {root}; {root / dockerfile} is not one"
        )

    dockerignore_text = check.string(context, "dockerignore", "build.context.dockerignore", required=False)
    dockerignore = None
    if dockerignore_text is not None:
        dockerignore = _relative(check, dockerignore_text, "build.context.dockerignore")
        # The agentex CLI only warns here; refusing is safer: a mistyped path would silently ship every secret.
        if not (root / dockerignore).is_file():
            raise check.fail(
                "build.context.dockerignore",
                f"names {root / dockerignore}, which is not a file; fix the path or remove the key",
            )
    return root, tuple(includes), dockerfile, dockerignore


def _check_agent(check: _Checker, agent: dict[str, Any]) -> str:
    name = check.string(agent, "name", "agent.name", required=True)
    assert name is not None
    if not AGENT_NAME.match(name):
        raise check.fail("agent.name", f"must match ^[a-z0-9-]+$ (lowercase letters, digits, '-'), not {name!r}")
    check.choice(agent, "acp_type", "agent.acp_type", ACP_TYPES, required=True)
    check.string(agent, "description", "agent.description", required=True)
    check.choice(agent, "agent_input_type", "agent.agent_input_type", INPUT_TYPES, required=False)
    env = check.mapping(agent, "env", "agent.env", required=False)
    for key, value in (env or {}).items():
        if not isinstance(value, str):
            raise check.fail(f"agent.env.{key}", f"must be a string (quote it in YAML), not {value!r}")
    credentials = agent.get("credentials")
    if credentials is not None and not isinstance(credentials, list):
        raise check.fail("agent.credentials", "must be a list of {env_var_name, secret_name, secret_key}")
    check.mapping(agent, "temporal", "agent.temporal", required=False)
    return name


def _check_local(check: _Checker, data: dict[str, Any]) -> None:
    local = check.mapping(data, "local_development", "local_development", required=False)
    agent = check.mapping(local or {}, "agent", "local_development.agent", required=False)
    if agent is not None:
        port = agent.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise check.fail("local_development.agent.port", f"must be a port number 1..65535, not {port!r}")


def load_manifest(path: Path) -> Manifest:
    """Read and validate `manifest.yaml`; the context root, include paths and Dockerfile must exist.

    Raises ManifestError naming the file and the key to fix.
    """
    path = Path(path)
    text, data = _read_yaml(path, "manifest")
    check = _Checker(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest must be a YAML mapping with `build` and `agent` keys")
    directory = path.resolve().parent
    build = check.mapping(data, "build", "build", required=True)
    agent = check.mapping(data, "agent", "agent", required=True)
    assert build is not None and agent is not None
    agent_name = _check_agent(check, agent)
    root, includes, dockerfile, dockerignore = _check_build(check, build, directory)
    _check_local(check, data)

    deployment = check.mapping(data, "deployment", "deployment", required=False) or {}
    image = check.mapping(deployment, "image", "deployment.image", required=False) or {}
    repository = check.string(image, "repository", "deployment.image.repository", required=False)
    tag = image.get("tag")
    if tag is not None and not isinstance(tag, (str, int, float)):
        raise check.fail("deployment.image.tag", f"must be a string, not {tag!r}")
    # Trap T19: the agentex CLI would send the literal `<repository>`; the last segment, else the agent name.
    segment = (repository or "").rstrip("/").rsplit("/", 1)[-1].strip()
    image_name = segment or agent_name
    log.debug("manifest %s: agent %s, context root %s, include %s", path, agent_name, root, includes)
    return Manifest(
        path=path,
        directory=directory,
        text=text,
        data=data,
        agent_name=agent_name,
        image_name=image_name,
        image_tag=None if tag is None else str(tag),
        context_root=root,
        include_paths=includes,
        dockerfile=dockerfile,
        dockerignore=dockerignore,
    )


# --- environments.yaml --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environments:
    """A validated environments.yaml: `keys` in file order, `text` verbatim."""

    path: Path
    text: str
    data: dict[str, Any]
    keys: tuple[str, ...]

    def select(self, name: str | None) -> tuple[str, str]:
        """(environment key, YAML text to send as `environment_config`) for `name`, or the only one when None.

        Trap T17: the file is sent verbatim when it holds one environment and none was named; otherwise a one-entry
        file (`schema_version: v1`, `environments: {key: block}`), so the server cannot pick another one. A name
        matches a key exactly, else the single entry whose `environment:` field equals it.
        """
        listed = ", ".join(self.keys)
        if name is None or not name.strip():
            if len(self.keys) == 1:
                return self.keys[0], self.text
            raise ManifestError(
                f"{self.path}: holds {len(self.keys)} environments ({listed}); choose one with the `environment` input"
            )
        name = name.strip()
        key = name if name in self.keys else None
        if key is None:
            targets = [k for k in self.keys if self.data["environments"][k].get("environment") == name]
            if len(targets) > 1:
                raise ManifestError(
                    f"{self.path}: environment {name!r} is the target of several entries ({', '.join(targets)}); "
                    "name one of those keys in the `environment` input"
                )
            key = targets[0] if targets else None
        if key is None:
            raise ManifestError(f"{self.path}: no environment {name!r}; the file defines: {listed}")
        block = self.data["environments"][key]
        one = {"schema_version": "v1", "environments": {key: block}}
        return key, yaml.safe_dump(one, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _check_environment(check: _Checker, key: str, block: Any) -> None:
    where = f"environments.{key}"
    if not isinstance(block, dict):
        raise check.fail(where, "must be a mapping with at least `auth.principal`")
    check.string(block, "environment", f"{where}.environment", required=False)
    kubernetes = check.mapping(block, "kubernetes", f"{where}.kubernetes", required=False)
    if kubernetes is not None:
        namespace = check.string(kubernetes, "namespace", f"{where}.kubernetes.namespace", required=True)
        assert namespace is not None
        cleaned = namespace.strip().lower()
        if not NAMESPACE.match(cleaned) or len(cleaned) > 63 or cleaned.startswith("-") or cleaned.endswith("-"):
            raise check.fail(
                f"{where}.kubernetes.namespace",
                f"must be 1-63 characters of [a-z0-9.-], not starting or ending with '-' (got {namespace!r})",
            )
    auth = check.mapping(block, "auth", f"{where}.auth", required=True)
    assert auth is not None
    principal = check.mapping(auth, "principal", f"{where}.auth.principal", required=True)
    assert principal is not None
    present = [k for k in PRINCIPAL_IDS if principal.get(k) not in (None, "")]
    if len(present) != 1:
        raise check.fail(
            f"{where}.auth.principal",
            f"must hold exactly one non-empty key of user_id / service_account_id (found {present or 'none'})",
        )
    check.string(block, "helm_repository_name", f"{where}.helm_repository_name", required=False)
    check.string(block, "helm_repository_url", f"{where}.helm_repository_url", required=False)
    oci = check.mapping(block, "oci_registry", f"{where}.oci_registry", required=False)
    if oci is not None:
        check.string(oci, "url", f"{where}.oci_registry.url", required=True)
        check.choice(oci, "provider", f"{where}.oci_registry.provider", ("gar",), required=False)
    check.mapping(block, "helm_overrides", f"{where}.helm_overrides", required=False)


def load_environments(path: Path) -> Environments:
    """Read and validate `environments.yaml` (sgp-api.md section 8); raises ManifestError naming what to fix."""
    path = Path(path)
    text, data = _read_yaml(path, "environments file")
    check = _Checker(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: an environments file must be a YAML mapping with an `environments` key")
    version = data.get("schema_version", "v1")
    if version != "v1":
        raise check.fail("schema_version", f"must be v1, not {version!r}")
    environments = check.mapping(data, "environments", "environments", required=True)
    if not environments:
        raise check.fail("environments", "must define at least one environment")
    for key, block in environments.items():
        if not isinstance(key, str):
            raise check.fail("environments", f"keys must be strings, not {key!r}")
        _check_environment(check, key, block)
    return Environments(path=path, text=text, data=data, keys=tuple(environments))


def select_environment(path: Path, name: str | None) -> tuple[str, str]:
    """Load `path` and return `Environments.select(name)`: the key and the YAML text to send."""
    return load_environments(path).select(name)
