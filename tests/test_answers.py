"""api.answers: a successful answer's JSON, and the server's reason for a refusal made readable."""

from __future__ import annotations

import pytest
import requests
import responses

from sgp_action.api.answers import error_detail, json_answer
from sgp_action.errors import ApiError
from tests.support import TRANSPORT_BASE as BASE
from tests.support import Sleeps, transport


@responses.activate
def test_json_body_that_is_not_json(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/v5/builds/b1", body="<html>login</html>")
    t = transport(sleeps)
    response = t.request("GET", "/v5/builds/b1", idempotent=True)
    with pytest.raises(ApiError, match=r"not JSON.*check that base-url points at the SGP API"):
        json_answer("GET", "/v5/builds/b1", response)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"detail": "plain"}, "plain"),
        ({"detail": [{"loc": ["body", "x"], "msg": "bad"}, {"msg": "no loc"}, "str"]}, "x: bad; no loc; str"),
        ({"detail": {"code": 1}}, "{'code': 1}"),
        ({"error": "other"}, '{"error": "other"}'),
        ("line one\n  line two", "line one line two"),
        ("x" * 600, "x" * 497 + "..."),
    ],
)
def test_error_detail(body: object, detail: str) -> None:
    response = requests.Response()
    response._content = (body if isinstance(body, str) else __import__("json").dumps(body)).encode()
    assert error_detail(response) == detail
