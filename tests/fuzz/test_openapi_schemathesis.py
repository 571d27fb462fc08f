"""Schemathesis against the OpenAPI document that `collector serve` publishes, over the fuzz
dataset in Azurite: every operation, positive and negative examples; no 5xx, and every response
conforms to the document (status, content type, headers, schema); invalid input is refused.

A longer run: AUDITKEEP_FUZZ_SCALE=20 (docs/reliability.md "Fuzzing").
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from collector.serve import QueryApiServer, make_server
from tests.fuzz.hostile import Fuzzed
from tests.serving import running

SCALE = max(1, int(os.environ.get("AUDITKEEP_FUZZ_SCALE", "1")))
# Not negative_data_rejection: schemathesis' negative list values (objects, nulls) may serialize to
# nothing, a request the document allows, which it then reports as "invalid data accepted". Run with
# it (AUDITKEEP_FUZZ_NEGATIVE=1) to look for real ones: the empty-value one was (allowEmptyValue).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
if os.environ.get("AUDITKEEP_FUZZ_NEGATIVE") == "1":
    CHECKS.append(negative_data_rejection)


@pytest.fixture(scope="module")
def served(fuzzed: Fuzzed) -> Iterator[QueryApiServer]:
    with running(make_server(fuzzed.services, "127.0.0.1", 0)) as server:
        yield server


@pytest.fixture(scope="module")
def published(served: QueryApiServer):  # schemathesis' schema type is internal
    # Invalid input may also be refused by the HTTP front end (414, documented) or by the route (404, 405).
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "404", "405", "414"]}}})
    return schemathesis.openapi.from_url(f"{served.url}/api/openapi.json", config=config, timeout=10)


schema = schemathesis.pytest.from_fixture("published")


@schema.parametrize()
@settings(max_examples=25 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_the_published_document(case):
    case.call_and_validate(checks=CHECKS, timeout=30)


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_other_methods_get_a_json_error_not_an_html_501(served: QueryApiServer, method):
    connection = http.client.HTTPConnection("127.0.0.1", served.server_address[1], timeout=10)
    try:
        connection.request(method, "/api/audit")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 405, (method, response.status)
    assert response.getheader("Content-Type") == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["code"] == "MethodNotAllowed"


def test_the_parameterless_operations_conform_too(published, served: QueryApiServer):
    """Health once more without parameters, and the document itself, which schemathesis leaves out
    of a schema loaded from its own URL (so it is checked here by hand)."""
    operations = {op.path: op for op in (result.ok() for result in published.get_all_operations())}
    assert set(operations) == {"/audit", "/audit/{id}", "/alerts", "/health"}
    response = operations["/health"].Case().call_and_validate(checks=CHECKS, timeout=30)
    assert response.status_code == 200
    connection = http.client.HTTPConnection("127.0.0.1", served.server_address[1], timeout=10)
    try:
        connection.request("GET", "/api/openapi.json")
        answer = connection.getresponse()
        document = json.loads(answer.read())
    finally:
        connection.close()
    assert answer.status == 200 and answer.getheader("Content-Type") == "application/json; charset=utf-8"
    assert document["openapi"] == "3.0.3" and document["servers"] == [{"url": f"{served.url}/api"}]
    assert set(document["paths"]) == {"/audit", "/audit/{id}", "/alerts", "/health", "/openapi.json"}
