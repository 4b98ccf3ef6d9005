"""What an SGP API answer means: its body read within bounds, and a non-2xx status turned into the error to raise.

A 2xx answer's body is read once by `load_body`, capped (a server can answer with gigabytes, or a gzip bomb), and
decoded by `json_answer`; an answer that cannot be used is a `BadAnswerError` naming the endpoint. A non-2xx answer
becomes the `ApiError` subclass of its status (`status_error`), whose message says what to fix: the server's own
reason is kept readable and short, the API key masked, and a 3xx names where it points without it being followed
(docs/sgp-api.md#redirects).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from sgp_action.api.body import AnswerTooLarge, body_text, read_answer
from sgp_action.errors import (
    ApiError,
    AuthError,
    BadAnswerError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)

#: The most a JSON answer may hold, decompressed; real answers are a few hundred KB at most.
MAX_ANSWER_BYTES = 8 * 2**20


def load_body(method: str, path: str, response: requests.Response) -> bytes:
    """The whole (decompressed) body of an answer, read once, at most MAX_ANSWER_BYTES; kept on the response.

    BadAnswerError when the answer is larger (a gzip bomb is cut off after MAX_ANSWER_BYTES of output, whatever it
    would inflate to) or its encoding cannot be read; a connection that breaks mid-body raises the `requests`
    exception that `Transport.request` retries.
    """
    try:
        return read_answer(response, MAX_ANSWER_BYTES)
    except AnswerTooLarge as exc:
        response.close()
        what = f"the answer was too large ({exc}, over the {MAX_ANSWER_BYTES // 2**20} MiB read)"
        raise bad_answer(method, path, response, what) from None
    except ValueError as exc:
        response.close()
        raise bad_answer(method, path, response, f"the answer could not be decoded ({exc})") from None
    except requests.exceptions.RequestException:
        response.close()
        raise


def bad_answer(method: str, path: str, response: requests.Response, what: str) -> BadAnswerError:
    """The error for a 2xx answer that cannot be used (exit 3), naming the endpoint."""
    return BadAnswerError(
        f"{method} {path}: {what}; check that base-url points at the SGP API",
        status_code=response.status_code,
        method=method,
        url=redacted_url(response.url),
    )


def redacted_url(url: str) -> str:
    """The URL without user:password@ (a base URL may carry them; messages must not)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def redirect_hint(response: requests.Response) -> str:
    """What a 3xx answer means for the user: where it points (its host first), and that base-url needs fixing.

    Redirects are never followed (the key would travel to the named host, docs/sgp-api.md#redirects).
    """
    location = response.headers.get("Location", "").strip()[:500]
    if not location:
        return "the server answers with a redirect that names no Location; fix base-url: it is not the SGP API"
    target = redacted_url(urljoin(response.url or "", location))
    host = urlsplit(target).hostname or "?"
    return (
        f"the server redirects to the host {host} ({target}); redirects are not followed, so the API key is never "
        "sent there: fix base-url, setting it to the address the SGP API answers at directly"
    )


def json_answer(method: str, path: str, response: requests.Response) -> Any:
    """The decoded JSON body of a successful answer; ApiError when it is not JSON (e.g. a wrong base-url)."""
    content = load_body(method, path, response)
    try:
        return json.loads(content)
    except ValueError:
        snippet = " ".join(content[:200].decode("utf-8", "replace").split())
        what = f"{response.status_code} with a body that is not JSON ({snippet!r})"
        raise bad_answer(method, path, response, what) from None


def error_detail(response: requests.Response, limit: int = 500) -> str:
    """The server's reason, readable: FastAPI's `detail` string as is, its list as `loc: msg; ...`, else the text.

    Reads at most MAX_ERROR_BYTES of the body: an error answer only feeds a message.
    """
    text = body_text(response)
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    detail: Any = body.get("detail", body.get("message")) if isinstance(body, dict) else None
    if isinstance(detail, str):
        text = detail
    elif isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or () if p != "body")
                msg = str(item.get("msg", ""))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        text = "; ".join(parts)
    elif detail is not None:
        text = str(detail)
    else:
        text = text.strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def status_error(
    method: str, path: str, response: requests.Response, *, redact: Callable[[str], str], retries: int = 0
) -> ApiError:
    """The ApiError subclass for a non-2xx answer, with a message saying what to fix.

    `redact` masks the API key, which a server may echo in its error body.
    """
    status = response.status_code
    detail = redact(error_detail(response))
    said = f" ({detail})" if detail else ""
    head = f"{method} {path}: {status} {response.reason or ''}".rstrip()
    after = f" after {retries} retries" if retries else ""
    cls: type[ApiError] = ApiError
    if status == 401:
        cls, hint = AuthError, f"{head}{said}: the API key was refused; check api-key"
    elif status == 403:
        cls, hint = AuthError, f"{head}{said}: check account-id and the key's permissions for that account"
    elif status == 404:
        cls, hint = NotFoundError, f"{head}{said}: not found in this account; check the id and base-url"
    elif status == 409:
        cls, hint = ConflictError, f"{head}: conflict: {detail or 'the request clashes with existing state'}"
    elif status in (400, 422):
        cls, hint = ValidationError, f"{head}: the server rejected the request: {detail or 'no reason given'}"
    elif status == 413:
        cls = PayloadTooLargeError
        if path.startswith("/v5/builds"):
            hint = f"{head}: the upload is over the server's limit (500 MB for a build context); exclude more files"
        else:  # not an upload: the JSON body itself, built from the manifest and environments file
            hint = f"{head}{said}: the request body is over the server's limit; shorten the manifest's and "
            hint += "environments file's values (environment variables, secrets, helm values)"
    elif status == 429:
        cls, hint = RateLimitError, f"{head}{said}: rate limited{after}; lower concurrency or try again later"
    elif status >= 500:
        cls, hint = ServerError, f"{head}{said}: server error{after}; try again later"
    elif 300 <= status < 400:
        hint = f"{head}: {redirect_hint(response)}"
    else:
        hint = f"{head}{said}: unexpected answer"
    text = redact(body_text(response))
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text[:2000]
    return cls(redact(hint), status_code=status, body=body, method=method, url=redacted_url(response.url))
