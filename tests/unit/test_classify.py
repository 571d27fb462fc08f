import json

import pytest
import requests

from collector.errors import (
    ContentUnavailableError,
    FatalApiError,
    InvalidWindowError,
    SubscriptionError,
    TransientApiError,
)
from collector.management_api import classify_error


def response(status, body=None, headers=None):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if body is not None else b""
    r.headers.update(headers or {})
    return r


def envelope(code, message="m"):
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (403, envelope("AF429", "Too many requests. Method=GetBlob, PublisherId=0"), TransientApiError, "AF429"),
        (429, envelope("AF429"), TransientApiError, "AF429"),
        (500, envelope("AF50000", "An internal error occurred. Retry the request."), TransientApiError, "AF50000"),
        (500, envelope("AF50005"), TransientApiError, "AF50005"),
        (503, None, TransientApiError, None),
        (408, None, TransientApiError, None),
        (502, {"unexpected": True}, TransientApiError, None),
        # Status first: 408, 429 and 5xx are transient whatever the code says (issue 12).
        (503, envelope("AF50001", "Service unavailable"), TransientApiError, "AF50001"),
        (500, envelope("AF20052"), TransientApiError, "AF20052"),
        (429, envelope("AF99999"), TransientApiError, "AF99999"),
        (408, envelope("AF20001"), TransientApiError, "AF20001"),
        (400, envelope("AF99999"), FatalApiError, "AF99999"),  # an unknown 4xx code stays fatal
        (404, None, FatalApiError, None),  # fetch_content makes this ContentUnavailableError
        (400, envelope("AF20022"), SubscriptionError, "AF20022"),
        (400, envelope("AF20023", "The subscription was disabled."), SubscriptionError, "AF20023"),
        (400, envelope("AF20055"), InvalidWindowError, "AF20055"),
        (400, envelope("AF20030"), InvalidWindowError, "AF20030"),
        (400, envelope("AF20031"), InvalidWindowError, "AF20031"),
        (400, envelope("AF20051", "Content requested with the key x has already expired."), ContentUnavailableError, "AF20051"),
        (404, envelope("AF20050"), ContentUnavailableError, "AF20050"),
        (401, envelope("AF10001"), FatalApiError, "AF10001"),
        (400, envelope("AF20010"), FatalApiError, "AF20010"),
        (400, envelope("AF20012"), FatalApiError, "AF20012"),
        (400, envelope("AF20020"), FatalApiError, "AF20020"),
        (400, envelope("AF20024"), FatalApiError, "AF20024"),  # success only for subscriptions/start
        (400, envelope("AF20052"), FatalApiError, "AF20052"),
        (401, {"Message": "Authorization has been denied for this request."}, FatalApiError, None),
    ],
)
def test_classification(status, body, kind, code):
    error = classify_error(response(status, body))
    assert type(error) is kind
    assert error.code == code
    assert error.status == status
    assert str(status) in str(error)


def test_retry_after_is_read():
    error = classify_error(response(429, envelope("AF429"), {"Retry-After": "7"}))
    assert isinstance(error, TransientApiError)
    assert error.retry_after == 7.0


def test_the_401_message_is_kept():
    error = classify_error(response(401, {"Message": "Authorization has been denied for this request."}))
    assert "Authorization has been denied" in str(error)


def test_auditing_off_is_fatal_and_says_so():
    """Microsoft's FAQ: while unified audit logging is off the API answers "...DataServiceException:
    Tenant <id> does not exist." (status and envelope undocumented: the simulator's 400 without a code)."""
    message = "Microsoft.Office.Compliance.Audit.DataServiceException: Tenant 7f3c1e2a does not exist."
    for body in ({"error": {"message": message}}, {"Message": message}):
        error = classify_error(response(400, body))
        assert type(error) is FatalApiError and error.code is None
        assert "unified audit logging is off or not yet active" in str(error) and message in str(error)
    assert "audit logging" not in str(classify_error(response(400, envelope("AF20011", "Specified tenant ID (x) does not exist"))))
