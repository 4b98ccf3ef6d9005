"""The action's exceptions, grouped by what the user can do about them.

Every exception carries the process exit code of docs/architecture.md#errors-and-exit-codes and a message that says what
to fix. Library code raises these; only the CLI layer turns them into `::error::` lines and exit codes.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_API = 3
EXIT_TIMEOUT = 4
EXIT_CANCELLED = 130


class ActionError(Exception):
    """Base class of every error the action reports to the user."""

    exit_code: int = EXIT_FAILED
    result: str = "failure"
    #: The `title=` of the `::error` annotation.
    title: str = "sgp-action failed"


# --- the user must change an input, a file or the workflow (nothing was created) -------------------


class ConfigError(ActionError):
    """Bad input, manifest, environments file, event payload or build context."""

    exit_code = EXIT_CONFIG
    title = "Bad input or configuration"


class InputError(ConfigError):
    """An action input or CLI flag is missing or malformed."""


class ManifestError(ConfigError):
    """manifest.yaml or environments.yaml is missing or invalid."""


class ContextError(ConfigError):
    """The build context cannot be packaged (bad .dockerignore, unreadable file, size limits...)."""


# --- the remote work failed ----------------------------------------------------------------------


class OperationFailed(ActionError):
    """The build or the deployment reached a terminal state other than success."""

    exit_code = EXIT_FAILED


class BuildFailed(OperationFailed):
    """The remote build ended failed, cancelled, timed out or in error."""

    title = "Build failed"


class DeploymentFailed(OperationFailed):
    """The deployment ended in a state other than healthy."""

    title = "Deployment failed"


class OperationTimeout(ActionError):
    """`build-timeout` or `deploy-timeout` passed before a terminal state."""

    exit_code = EXIT_TIMEOUT
    title = "Timed out"


class RequestDeadlineError(OperationTimeout):
    """An API call was cut, or not retried, because its phase's time limit passed; the phase says which one."""


class Cancelled(ActionError):
    """The job was cancelled (SIGINT / SIGTERM) and remote work was stopped."""

    exit_code = EXIT_CANCELLED
    title = "Cancelled"
    result = "cancelled"


# --- the API refused or could not be reached -----------------------------------------------------


class ApiError(ActionError):
    """The SGP API answered with an error, or could not be reached after retries."""

    exit_code = EXIT_API
    title = "SGP API error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.method = method
        self.url = url


class AuthError(ApiError):
    """401 / 403: the API key or account id is wrong, or lacks permission."""


class NotFoundError(ApiError):
    """404: the build, deployment or endpoint does not exist in this account."""


class ConflictError(ApiError):
    """409: the request conflicts with existing state (e.g. an agent name already in use)."""


class ValidationError(ApiError):
    """400 / 422: the server rejected the request's content; `detail` says why."""


class PayloadTooLargeError(ApiError):
    """413: the upload is over the server's limit."""


class RateLimitError(ApiError):
    """429 after every retry."""


class ServerError(ApiError):
    """5xx after every retry."""


class BadAnswerError(ApiError):
    """A 2xx answer this action cannot use: wrong shape, too large, or a list whose paging never ends."""


class ApiConnectionError(ApiError):
    """The API could not be reached (DNS, refused, reset) after every retry."""


class ApiTimeoutError(ApiError):
    """An HTTP request timed out after every retry."""
