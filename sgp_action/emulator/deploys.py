"""Deployment requests (docs/sgp-api.md#create-a-deployment, docs/sgp-api.md#environmentsyaml) and the Kubernetes-style
timeline a deployment goes through."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

AGENT_NAME = re.compile(r"^[a-z0-9-]+$")
NAMESPACE = re.compile(r"^[a-z0-9.-]+$")
LABEL_MAX = 30
DEFAULT_TTL = timedelta(hours=8)


class DeployRequestError(ValueError):
    """The create-deployment body breaks a rule; the message is the 400 `detail`."""


def sanitize_label(text: str) -> str:
    """The server's label rule (docs/sgp-api.md#preview-label-sanitising): lowercase, runs outside [a-z0-9] -> '-',
    trim, cut to 30."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label[:LABEL_MAX].rstrip("-")


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp (a trailing Z allowed); a naive one is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds and a Z, as the API writes times."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _yaml(text: Any, field_name: str) -> Any:
    if not isinstance(text, str) or not text.strip():
        raise DeployRequestError(f"{field_name} is required: the YAML text of the file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployRequestError(f"{field_name} is not valid YAML: {exc}") from None


def manifest_agent_name(text: Any) -> str:
    """Validate manifest YAML text and return its `agent.name`."""
    data = _yaml(text, "manifest_file")
    agent = data.get("agent") if isinstance(data, dict) else None
    name = agent.get("name") if isinstance(agent, dict) else None
    if not isinstance(name, str) or not name:
        raise DeployRequestError("manifest_file has no agent.name")
    if not AGENT_NAME.match(name):
        raise DeployRequestError(f"manifest_file agent.name {name!r} must match ^[a-z0-9-]+$")
    return name


def environment_namespace(text: Any) -> str | None:
    """Validate environment-config YAML (docs/sgp-api.md#environmentsyaml); return the first environment's namespace."""
    data = _yaml(text, "environment_config")
    if not isinstance(data, dict):
        raise DeployRequestError("environment_config must be a YAML mapping with schema_version and environments")
    version = data.get("schema_version", "v1")
    if str(version) != "v1":
        raise DeployRequestError(f"environment_config schema_version must be 'v1'; got {version!r}")
    environments = data.get("environments")
    if not isinstance(environments, dict) or not environments:
        raise DeployRequestError("environment_config needs a non-empty 'environments' mapping")
    namespaces: list[str | None] = []
    for key, entry in environments.items():
        where = f"environment_config environments.{key}"
        if not isinstance(entry, dict):
            raise DeployRequestError(f"{where} must be a mapping")
        auth = entry.get("auth")
        principal = auth.get("principal") if isinstance(auth, dict) else None
        if not isinstance(principal, dict):
            raise DeployRequestError(f"{where}.auth.principal is required")
        ids = [k for k in ("user_id", "service_account_id") if principal.get(k)]
        if len(ids) != 1:
            raise DeployRequestError(f"{where}.auth.principal needs exactly one of user_id or service_account_id")
        namespaces.append(_namespace(entry.get("kubernetes"), where))
    return namespaces[0]


def _namespace(kubernetes: Any, where: str) -> str | None:
    if kubernetes is None:
        return None
    namespace = kubernetes.get("namespace") if isinstance(kubernetes, dict) else None
    if not isinstance(namespace, str) or not namespace.strip():
        raise DeployRequestError(f"{where}.kubernetes.namespace is required when kubernetes is set")
    namespace = namespace.strip().lower()
    if not NAMESPACE.match(namespace) or len(namespace) > 63 or namespace.startswith("-") or namespace.endswith("-"):
        raise DeployRequestError(
            f"{where}.kubernetes.namespace {namespace!r} must use [a-z0-9.-], be at most 63 characters, "
            "and not start or end with '-'"
        )
    return namespace


@dataclass
class DeployRequest:
    """A validated create-deployment body (the build checks happen in the store, which knows the builds)."""

    manifest_file: str
    environment_config: str
    agent_name: str
    namespace: str
    build_id: str | None
    image_name: str | None
    image_tag: str | None
    preview: bool
    preview_label: str | None
    expires_at: datetime | None


def parse_deploy_body(body: Any, now: datetime) -> DeployRequest:
    """Validate a create-deployment JSON body (docs/sgp-api.md#preview-only-fields) or raise `DeployRequestError`."""
    if not isinstance(body, dict):
        raise DeployRequestError("the request body must be a JSON object")
    agent_name = manifest_agent_name(body.get("manifest_file"))
    namespace = environment_namespace(body.get("environment_config")) or "default"
    build_id, image_name, image_tag = body.get("build_id"), body.get("image_name"), body.get("image_tag")
    for key, value in (("build_id", build_id), ("image_name", image_name), ("image_tag", image_tag)):
        if value is not None and (not isinstance(value, str) or not value):
            raise DeployRequestError(f"{key} must be a non-empty string")
    if build_id is None and (image_name is None or image_tag is None):
        raise DeployRequestError("send build_id, or both image_name and image_tag")
    preview = body.get("preview", False)
    if preview is None:
        preview = False
    if not isinstance(preview, bool):
        raise DeployRequestError("preview must be a boolean")
    raw_label, raw_expiry = body.get("preview_label"), body.get("expires_at")
    if not preview:
        extra = [k for k, v in (("preview_label", raw_label), ("expires_at", raw_expiry)) if v is not None]
        if extra:
            raise DeployRequestError(f"{' and '.join(extra)} only apply to preview deployments (preview=true)")
    label: str | None = None
    if raw_label is not None:
        if not isinstance(raw_label, str):
            raise DeployRequestError("preview_label must be a string")
        label = sanitize_label(raw_label)
        if not label:
            raise DeployRequestError(f"preview_label {raw_label!r} has no letters or digits left after sanitizing")
    expires_at: datetime | None = None
    if preview:
        expires_at = now + DEFAULT_TTL
        if raw_expiry is not None:
            try:
                expires_at = parse_timestamp(str(raw_expiry))
            except ValueError:
                raise DeployRequestError(f"expires_at {raw_expiry!r} is not an ISO 8601 datetime") from None
            if expires_at <= now:
                raise DeployRequestError(f"expires_at {raw_expiry!r} is in the past")
    return DeployRequest(
        manifest_file=body["manifest_file"],
        environment_config=body["environment_config"],
        agent_name=agent_name,
        namespace=namespace,
        build_id=build_id,
        image_name=image_name,
        image_tag=image_tag,
        preview=preview,
        preview_label=label,
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class Step:
    """One point of a deployment's timeline, `at` a fraction (0..1) of --deploy-seconds."""

    at: float
    status: str | None = None
    event: tuple[str, str, str] | None = None  # (type, reason, message)
    log: tuple[str, str] | None = None  # (level, message)


def deploy_timeline(agent: str, namespace: str, release: str, image: str, fail: bool) -> list[Step]:
    """The statuses, Kubernetes events and pod log lines a deployment produces, in order."""
    pod = f"{release}-7d9f8c6b5-x2k4q"
    steps = [
        Step(0.0, status="PENDING"),
        Step(0.1, log=("INFO", f"Helm upgrade --install {release} in namespace {namespace}")),
        Step(0.2, status="IN_PROGRESS", event=("Normal", "Scheduled", f"Successfully assigned {namespace}/{pod}")),
        Step(0.3, event=("Normal", "Pulling", f'Pulling image "{image}"')),
        Step(0.45, event=("Normal", "Pulled", f'Successfully pulled image "{image}"')),
        Step(0.5, event=("Normal", "Created", "Created container agent")),
        Step(0.55, event=("Normal", "Started", "Started container agent")),
        Step(0.6, log=("INFO", f"Starting agent {agent}")),
        Step(0.65, log=("INFO", "Started server process [1]")),
    ]
    if fail:
        return [
            *steps,
            Step(0.7, log=("ERROR", "Traceback (most recent call last):")),
            Step(0.75, log=("ERROR", "ModuleNotFoundError: No module named 'project'")),
            Step(0.8, event=("Warning", "BackOff", "Back-off restarting failed container agent")),
            Step(0.9, log=("ERROR", "Container agent exited with code 1")),
            Step(1.0, status="FAILED", event=("Warning", "CrashLoopBackOff", f"Pod {pod} is in CrashLoopBackOff")),
        ]
    return [
        *steps,
        Step(0.75, log=("INFO", "Waiting for application startup.")),
        Step(0.8, log=("INFO", "Application startup complete.")),
        Step(0.85, log=("INFO", "Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)")),
        Step(0.9, event=("Normal", "Ready", "Readiness probe passed")),
        Step(0.95, log=("INFO", 'GET /healthz HTTP/1.1" 200 OK')),
        Step(1.0, status="HEALTHY", log=("INFO", f"Deployment {release} is healthy")),
    ]
