"""The action's inputs as a table, and where each one's text comes from, before any of it is parsed.

`INPUTS` is the one list of inputs: action.yml declares the same names (a test compares them), the CLI offers each
as a `--flag`, and `sgp_action.run.settings` parses their text into `Settings`.

Where a value comes from, first match wins: a `sgp-action run --<input>` flag; `INPUT_<NAME>` with hyphens turned
into underscores (what our action.yml passes); `INPUT_<NAME>` with the hyphens kept (what GitHub and act set for
docker and node actions); for the key, account and URL the official SDK's variables (`SGP_API_KEY`,
`SGP_ACCOUNT_ID`, `SGP_CLIENT_BASE_URL`) so the CLI works like the SDK; then the default. An empty value counts as
not set, because a composite action passes `""` for every input the workflow left out. The secret inputs are read
here unparsed, so the CLI can mask them before anything else is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from sgp_action.ci.runner import SDK_KEY_VARIABLE, SECRET_INPUTS, input_env_names

DEFAULT_BASE_URL = "https://api.egp.scale.com"


@dataclass(frozen=True)
class InputSpec:
    """One action input: its name, its default as action.yml shows it, and a one-line help."""

    name: str
    default: str
    help: str
    boolean: bool = False

    @property
    def env_names(self) -> tuple[str, str]:
        """`INPUT_API_KEY` and `INPUT_API-KEY`."""
        return input_env_names(self.name)


INPUTS: tuple[InputSpec, ...] = (
    InputSpec("command", "auto", "auto, preview, deploy, build, teardown, cleanup, detect or doctor"),
    InputSpec(
        "api-key",
        "",
        "SGP API key (required except for detect and a dry run of preview, deploy or build); masked at once",
    ),
    InputSpec(
        "account-id", "", "SGP account id (required except for detect and a dry run of preview, deploy or build)"
    ),
    InputSpec("base-url", "", f"API base URL; default $SGP_CLIENT_BASE_URL, else {DEFAULT_BASE_URL}"),
    InputSpec(
        "allow-insecure-http",
        "false",
        "send the API key over plain http:// to a host other than this machine (loopback)",
        boolean=True,
    ),
    InputSpec("working-directory", ".", "where relative paths start"),
    InputSpec("manifest", "manifest.yaml", "the agent's manifest"),
    InputSpec("environments", "", "the environments file; default environments.yaml beside the manifest"),
    InputSpec("environment", "", "which environment to deploy to; default the file's only one"),
    InputSpec("image-name", "", "default the manifest's image repository's last segment, else agent.name"),
    InputSpec("image-tag", "", "default the first 7 characters of the deployed commit, else latest"),
    InputSpec("build-args", "", "build arguments, one KEY=VALUE a line"),
    InputSpec("platform", "", "linux/amd64, linux/arm64 or linux/arm/v7"),
    InputSpec("build-id", "", "deploy this existing build instead of building"),
    InputSpec("agent-id", "", "the agent's id, when the action cannot find it (an agent made elsewhere)"),
    InputSpec("preview-label", "", "preview label; default pr-<number>; sanitized as the server does"),
    InputSpec("preview-ttl", "8h", "lifetime of a preview: 90m, 8h, 2d, ..."),
    InputSpec("expires-at", "", "ISO 8601 expiry of a preview (UTC when no offset is given); overrides preview-ttl"),
    InputSpec("wait", "true", "wait for terminal states", boolean=True),
    InputSpec("build-timeout", "30m", "cancel the build and fail after this"),
    InputSpec("deploy-timeout", "15m", "fail after this"),
    InputSpec("poll-interval", "5s", "status polling period"),
    InputSpec("reuse-build", "true", "reuse a successful build with the same working-tree hash", boolean=True),
    InputSpec("replace-previous", "true", "delete older active previews with the same label", boolean=True),
    InputSpec("follow-symlinks", "false", "follow symlinks that stay inside the repository", boolean=True),
    InputSpec("github-token", "", "forge token: PR comment, GitHub deployments, and PR state during cleanup"),
    InputSpec("comment", "auto", "post/update one PR comment: auto, true or false"),
    InputSpec(
        "deployment-url",
        "",
        "URL shown on GitHub deployments and in the PR comment; a template with {label}, {deployment_id}, {agent}, "
        "{sha}, {environment}, {namespace}, {release}",
    ),
    InputSpec("dry-run", "false", "validate, package and print the plan; create nothing", boolean=True),
    InputSpec("debug", "false", "verbose logs (also on when RUNNER_DEBUG=1)", boolean=True),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
# The official SDK's variables, used when the input is not set (CLI use, or a workflow-level env).
_SDK_ENV = {"api-key": SDK_KEY_VARIABLE, "account-id": "SGP_ACCOUNT_ID", "base-url": "SGP_CLIENT_BASE_URL"}


# --- reading --------------------------------------------------------------------------------------------------------


def raw_inputs(environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The text of every input that was set (flags over `INPUT_*` over the SDK variables), by input name."""
    found: dict[str, str] = {}
    for spec in INPUTS:
        flag = (overrides or {}).get(spec.name)
        candidates = [flag, *(environ.get(env) for env in spec.env_names)]
        if spec.name in _SDK_ENV:
            candidates.append(environ.get(_SDK_ENV[spec.name]))
        for candidate in candidates:
            if candidate is not None and candidate.strip() != "":
                found[spec.name] = candidate
                break
    return found


def secret_values(environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> list[str]:
    """The raw secret inputs, to mask before anything else is printed."""
    raw = raw_inputs(environ, overrides)
    return [raw[name].strip() for name in SECRET_INPUTS if name in raw]


# --- CLI flags ------------------------------------------------------------------------------------------------------


def _dest(spec: InputSpec) -> str:
    # Prefixed: the CLI's own `command` attribute names the subcommand, and `--command` must not overwrite it.
    return "input_" + spec.name.replace("-", "_")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `--<input>` for every input (flags win over `INPUT_*`); booleans also work as bare switches.

    Values land in `args.input_<name_with_underscores>`; read them with `overrides_from_args`.
    """
    group = parser.add_argument_group("action inputs (each also read from INPUT_<NAME>)")
    for spec in INPUTS:
        dest, metavar = _dest(spec), spec.name.replace("-", "_").upper()
        text = spec.help + (f" (default: {spec.default})" if spec.default else "")
        if spec.boolean:
            group.add_argument(
                f"--{spec.name}", dest=dest, default=None, nargs="?", const="true", metavar="BOOL", help=text
            )
        else:
            group.add_argument(f"--{spec.name}", dest=dest, default=None, metavar=metavar, help=text)


def overrides_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    """The flags given on the command line, by input name (for `load_settings`)."""
    return {spec.name: getattr(args, _dest(spec), None) for spec in INPUTS}
