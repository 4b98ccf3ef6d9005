"""The action's inputs (README.md#inputs-and-outputs), parsed and validated once into a frozen `Settings`.

Their text is found by `sgp_action.run.inputs` (flags, `INPUT_*`, the SDK's variables, defaults); here it is parsed.
Every problem is an `InputError` (exit 2) that names the input and says what to write instead. Secret values (the
API key, the token, build-args values) never appear in a message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sgp_action.ci.deployments import validate_url_template
from sgp_action.durations import parse_duration
from sgp_action.errors import InputError
from sgp_action.run.inputs import DEFAULT_BASE_URL, INPUTS, raw_inputs

if TYPE_CHECKING:
    from sgp_action.ci.event import WorkflowEvent

COMMANDS = ("auto", "preview", "deploy", "build", "teardown", "cleanup", "detect", "doctor")
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
LABEL_MAX = 30
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_BUILD_ARG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_TOKENISH = re.compile(r"^\S+$")


@dataclass(frozen=True)
class Settings:
    """Every input, parsed. Durations are seconds; paths are absolute; unset optional values are None."""

    command: str
    api_key: str = field(repr=False)
    account_id: str
    base_url: str
    working_directory: Path
    manifest: Path
    environments: Path
    environment: str | None
    image_name: str | None
    image_tag: str | None
    build_args: Mapping[str, str] = field(repr=False)
    platform: str | None
    build_id: str | None
    preview_label: str | None
    preview_ttl: float
    expires_at: datetime | None
    wait: bool
    build_timeout: float
    deploy_timeout: float
    poll_interval: float
    reuse_build: bool
    replace_previous: bool
    follow_symlinks: bool
    github_token: str | None = field(repr=False)
    comment: bool | None  # None: auto
    dry_run: bool
    debug: bool
    temp_dir: str | None = None  # $RUNNER_TEMP: where packaging writes the archive
    allow_insecure_http: bool = False
    agent_id: str | None = None  # for an agent made elsewhere whose id nothing else tells
    deployment_url: str = ""  # a template (sgp_action.ci.deployments.URL_FIELDS), validated

    def require_credentials(self, what: str) -> None:
        """Raise InputError when api-key or account-id is missing: a dry run that reads the server needs both."""
        missing = [name for name, value in (("api-key", self.api_key), ("account-id", self.account_id)) if not value]
        if missing:
            raise InputError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required: {what} reads the "
                "deployments on SGP even with dry-run. Pass them from secrets/variables, "
                "e.g. api-key: ${{ secrets.SGP_API_KEY }}; on a command line, --api-key and --account-id "
                "(or SGP_API_KEY and SGP_ACCOUNT_ID)"
            )

    def should_comment(self, is_pull_request: bool) -> bool:
        """Whether to post the sticky PR comment (`comment: auto` means: with a token, on PR events)."""
        if self.comment is None:
            return bool(self.github_token) and is_pull_request
        return self.comment and bool(self.github_token) and is_pull_request


def sanitize_label(text: str) -> str:
    """The preview label as the server stores it (docs/sgp-api.md#preview-label-sanitising).

    Lowercased, each run of characters outside `[a-z0-9]` becomes one `-`, leading and trailing `-` removed, cut to
    30 characters and a `-` left at the cut removed. Raises InputError when nothing is left.
    """
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:LABEL_MAX].rstrip("-")
    if not label:
        raise InputError(
            f"preview-label: {text!r} has no letters or digits, so it sanitizes to nothing; use e.g. pr-123"
        )
    return label


# --- value parsers (each raises InputError naming the input) --------------------------------------------------------


def parse_bool(name: str, text: str) -> bool:
    """true/false, yes/no, 1/0, on/off in any case."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputError(f"{name}: {text!r} is not a boolean; use true or false")


def parse_seconds(name: str, text: str) -> float:
    """A duration input in seconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{name}: {text!r} is not a usable duration: {exc}") from None


def parse_build_args(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines; blank lines and `#` comments skipped; split on the first `=`; values are never echoed."""
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"build-args line {number}: expected KEY=VALUE (one a line), found no '='")
        if not _BUILD_ARG_KEY.match(key):
            raise InputError(
                f"build-args line {number}: {key!r} is not a valid name; use letters, digits and _ (not first a digit)"
            )
        if key in result:
            raise InputError(f"build-args line {number}: {key} is given twice; keep one line per name")
        result[key] = value
    return result


def parse_base_url(text: str) -> str:
    """An http(s) URL with a host; a path prefix is kept, a trailing `/` dropped."""
    url = text.strip()
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in url:
        raise InputError(f"base-url: {text!r} is not an http(s) URL with a host, like {DEFAULT_BASE_URL}")
    if parts.username or parts.password:
        raise InputError("base-url: must not carry credentials; pass the key as api-key")
    if parts.query or parts.fragment:
        raise InputError(f"base-url: {text!r} must not have a query or fragment")
    return url.rstrip("/")


def sends_key_in_clear(base_url: str) -> bool:
    """True for an http:// URL whose host is not loopback (127.0.0.0/8, ::1, localhost): anyone on the path reads it."""
    parts = urlsplit(base_url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name may resolve anywhere
    mapped = getattr(address, "ipv4_mapped", None)
    return not (address.is_loopback or (mapped is not None and mapped.is_loopback))


def parse_expires_at(text: str, now: datetime) -> datetime:
    """ISO 8601 (a trailing Z allowed; UTC when no offset); must be in the future."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"expires-at: {text!r} is not an ISO 8601 time; write e.g. 2030-01-31T18:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment <= now:
        raise InputError(f"expires-at: {text.strip()} is not in the future; give a later time or use preview-ttl")
    return moment.astimezone(timezone.utc)


def _choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise InputError(f"{name}: {text!r} is not one of {', '.join(choices)}")
    return value


def _token(name: str, text: str) -> str:
    value = text.strip()
    if not _TOKENISH.match(value):
        raise InputError(f"{name}: the value contains white space or a line break; paste only the value itself")
    return value


# --- reading --------------------------------------------------------------------------------------------------------


def debug_requested(environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> bool:
    """Debug mode: `RUNNER_DEBUG=1` (a job re-run with debug logging) or a true `debug` input (flag or `INPUT_*`).

    Never raises: the CLI asks before the inputs are validated, and `load_settings` rejects a value that is not a
    boolean.
    """
    if environ.get("RUNNER_DEBUG") == "1":
        return True
    return raw_inputs(environ, overrides).get("debug", "").strip().lower() in _TRUE


def load_settings(
    environ: Mapping[str, str],
    overrides: Mapping[str, str | None] | None = None,
    *,
    event: WorkflowEvent | None = None,
    now: datetime | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Parse and validate every input. `event` gives the default preview label (`pr-<number>`).

    Raises InputError naming the first bad input.
    """
    raw = raw_inputs(environ, overrides)
    now = now or datetime.now(timezone.utc)

    def get(name: str) -> str:
        if name in raw:
            return raw[name]
        return next(spec.default for spec in INPUTS if spec.name == name)

    def optional(name: str) -> str | None:
        return raw[name].strip() if name in raw else None

    command = _choice("command", get("command"), COMMANDS)
    dry_run = parse_bool("dry-run", get("dry-run"))
    api_key = _token("api-key", raw["api-key"]) if "api-key" in raw else ""
    account_id = _token("account-id", raw["account-id"]) if "account-id" in raw else ""
    if command != "detect" and not dry_run:
        # In a workflow the fix is the step's input; on a command line, the flag or the SDK's variable.
        in_workflow = environ.get("GITHUB_ACTIONS") == "true"
        if not api_key:
            raise InputError(
                "api-key is required: pass it from a secret, e.g. api-key: ${{ secrets.SGP_API_KEY }}"
                if in_workflow
                else "api-key is required: pass --api-key KEY, or set SGP_API_KEY (INPUT_API_KEY also works)"
            )
        if not account_id:
            raise InputError(
                "account-id is required: pass your SGP account id, e.g. account-id: ${{ vars.SGP_ACCOUNT_ID }}"
                if in_workflow
                else "account-id is required: pass --account-id ID, or set SGP_ACCOUNT_ID (INPUT_ACCOUNT_ID also works)"
            )
    base_url = parse_base_url(raw.get("base-url", DEFAULT_BASE_URL))
    allow_insecure_http = parse_bool("allow-insecure-http", get("allow-insecure-http"))
    if api_key and command != "detect" and sends_key_in_clear(base_url) and not allow_insecure_http:
        raise InputError(
            f"base-url: {base_url} is plain http:// to a host that is not this machine, so the API key would cross "
            "the network unencrypted; use https://, or set allow-insecure-http: true if that network is trusted"
        )

    workdir = (cwd or Path.cwd()) / get("working-directory").strip()
    if not workdir.is_dir():
        raise InputError(f"working-directory: {get('working-directory').strip()!r} is not a directory")
    workdir = workdir.resolve()
    manifest = (workdir / get("manifest").strip()).resolve()
    environments_text = optional("environments")
    environments = (
        (workdir / environments_text).resolve() if environments_text else manifest.parent / "environments.yaml"
    )

    image_name = optional("image-name")
    if image_name is not None and not _IMAGE_NAME.match(image_name):
        raise InputError(
            f"image-name: {image_name!r} is not a valid image name; use lowercase letters, digits, -, _, ."
        )
    image_tag = optional("image-tag")
    if image_tag is not None and not _IMAGE_TAG.match(image_tag):
        raise InputError(f"image-tag: {image_tag!r} is not a valid tag; use up to 128 of letters, digits, _, . and -")
    platform = _choice("platform", raw["platform"], PLATFORMS) if "platform" in raw else None
    build_id = _token("build-id", raw["build-id"]) if "build-id" in raw else None
    agent_id = _token("agent-id", raw["agent-id"]) if "agent-id" in raw else None

    label_text = optional("preview-label")
    if label_text is not None:
        preview_label: str | None = sanitize_label(label_text)
    elif event is not None and event.pr_number:
        preview_label = f"pr-{event.pr_number}"
    else:
        preview_label = None

    comment_text = get("comment").strip().lower()
    try:
        comment = None if comment_text == "auto" else parse_bool("comment", comment_text)
    except InputError:
        raise InputError(f"comment: {get('comment').strip()!r} is not a choice; use auto, true or false") from None
    token = _token("github-token", raw["github-token"]) if "github-token" in raw else None
    expires_text = optional("expires-at")
    try:
        deployment_url = validate_url_template(raw.get("deployment-url", ""))
    except ValueError as exc:
        raise InputError(f"deployment-url: {exc}") from None
    parse_bool("debug", get("debug"))  # validated here; the value is debug_requested's, which the CLI reads too
    return Settings(
        command=command,
        api_key=api_key,
        account_id=account_id,
        base_url=base_url,
        working_directory=workdir,
        manifest=manifest,
        environments=environments,
        environment=optional("environment"),
        image_name=image_name,
        image_tag=image_tag,
        build_args=parse_build_args(raw.get("build-args", "")),
        platform=platform,
        build_id=build_id,
        agent_id=agent_id,
        preview_label=preview_label,
        preview_ttl=parse_seconds("preview-ttl", get("preview-ttl")),
        expires_at=parse_expires_at(expires_text, now) if expires_text else None,
        wait=parse_bool("wait", get("wait")),
        build_timeout=parse_seconds("build-timeout", get("build-timeout")),
        deploy_timeout=parse_seconds("deploy-timeout", get("deploy-timeout")),
        poll_interval=parse_seconds("poll-interval", get("poll-interval")),
        reuse_build=parse_bool("reuse-build", get("reuse-build")),
        replace_previous=parse_bool("replace-previous", get("replace-previous")),
        follow_symlinks=parse_bool("follow-symlinks", get("follow-symlinks")),
        github_token=token,
        comment=comment,
        dry_run=dry_run,
        debug=debug_requested(environ, overrides),
        temp_dir=environ.get("RUNNER_TEMP") or None,
        allow_insecure_http=allow_insecure_http,
        deployment_url=deployment_url,
    )
