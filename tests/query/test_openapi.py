"""The OpenAPI document: well-formed, complete, and describing what the handlers really return."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from collector.api import Api
from collector.models import FIELDS
from collector.openapi import document
from collector.query.params import PARAMETERS, TIME_PATTERN
from tests.query.data import WIDE

BASE = "http://127.0.0.1:7071/api"
DOC = document(BASE)


def resolve(ref: str) -> dict[str, Any]:
    assert ref.startswith("#/")
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]  # the document is JSON: any node may be a dict


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of OpenAPI 3.0 schema keywords the document uses (enough to catch drift)."""
    if "$ref" in schema:
        validate(value, resolve(schema["$ref"]), where)
        return
    if value is None:
        assert schema.get("nullable"), f"{where}: null not allowed"
        return
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool, "number": (int, float)}
    if kind:
        assert isinstance(value, types[kind]) and not (kind == "integer" and isinstance(value, bool)), f"{where}: {kind}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in enum"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{where}: extra {set(value) - set(properties)}"
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], f"{where}.{name}")
    if isinstance(value, list):
        for n, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{where}[{n}]")


def test_document_is_openapi_3_with_every_route():
    assert DOC["openapi"].startswith("3.0.") and DOC["info"]["title"] and DOC["info"]["version"]
    assert DOC["servers"] == [{"url": BASE}]
    assert set(DOC["paths"]) == {"/audit", "/audit/{id}", "/alerts", "/health", "/openapi.json"}
    for path, item in DOC["paths"].items():
        assert set(item) == {"get"}, path
        operation = item["get"]
        assert operation["operationId"] and operation["summary"]
        assert "200" in operation["responses"] and "401" in operation["responses"]
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5][0-9][0-9]", status) and response["description"]
        for placeholder in re.findall(r"{(\w+)}", path):
            assert any(p["in"] == "path" and p["name"] == placeholder and p["required"] for p in operation["parameters"])
    for ref in refs(DOC):
        assert resolve(ref)
    json.dumps(DOC)


def test_security_schemes_describe_the_function_key():
    schemes = DOC["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {("header", "x-functions-key"), ("query", "code")}
    assert all(s["type"] == "apiKey" for s in schemes.values())
    assert all(set(req) <= set(schemes) for req in DOC["security"])


def test_audit_parameters_are_exactly_the_parsers():
    parameters = DOC["paths"]["/audit"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == [p.name for p in PARAMETERS]
    by_name = {p["name"]: p for p in parameters}
    assert all(p["in"] == "query" and not p["required"] and p["description"] for p in parameters)
    assert by_name["top"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert by_name["format"]["schema"]["enum"] == ["json", "csv", "ndjson"]
    for name in ("user", "operation", "workload", "result", "recordType", "clientIp", "contentType"):
        assert by_name[name]["schema"]["type"] == "array"
        assert by_name[name]["style"] == "form" and by_name[name]["explode"] is False
    assert by_name["recordType"]["schema"]["items"]["type"] == "integer"
    assert by_name["start"]["schema"]["pattern"] == f"^{TIME_PATTERN}$"
    errors = DOC["paths"]["/audit"]["get"]["responses"]
    assert {"400", "500"} <= set(errors) and "404" in DOC["paths"]["/audit/{id}"]["get"]["responses"]


@pytest.mark.parametrize("text, valid", [
    ("2024-05-01", True), ("2024-05-01T08:00:00Z", True), ("2024-05-01T08:00:00.1234567+02:00", True),
    ("2024-05-01T08:00", True), ("2024-05-01 08:00:00-0530", True),
    ("2024-05-01Z", False), ("yesterday", False), ("2024-5-1", False), (" 2024-05-01", False),
])
def test_time_pattern_is_what_the_parser_accepts(text, valid):
    from collector.errors import QueryError
    from collector.query.params import parse_request
    from tests.query.data import NOW

    assert bool(re.search(f"^{TIME_PATTERN}$", text)) is valid
    try:
        parse_request({"start": text, "end": "2024-05-02T12:00:00Z"}, now=NOW, max_range_days=31)
        accepted = True
    except QueryError:
        accepted = False
    assert accepted is valid


def test_the_documented_schemas_match_real_responses(dataset, api):
    operation = DOC["paths"]["/audit"]["get"]["responses"]
    page = api.handle("GET", "audit", {**WIDE, "top": "3"}, {}, BASE)
    validate(page.json(), operation["200"]["content"]["application/json"]["schema"])
    assert set(page.json()["value"][0]) == set(FIELDS) == set(DOC["components"]["schemas"]["AuditRecord"]["properties"])
    last = api.handle("GET", "audit", {**WIDE, "user": "dave@fabrikam.com", "top": "1000"}, {}, BASE)
    validate(last.json(), operation["200"]["content"]["application/json"]["schema"])
    bad = api.handle("GET", "audit", {"top": "0"}, {}, BASE)
    validate(bad.json(), operation["400"]["content"]["application/json"]["schema"])
    missing = api.handle("GET", "audit/nope", {}, {}, BASE)
    validate(missing.json(), DOC["paths"]["/audit/{id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"])
    health = api.handle("GET", "health", {}, {}, BASE)
    validate(health.json(), DOC["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    for fmt, media in (("csv", "text/csv"), ("ndjson", "application/x-ndjson")):
        response = api.handle("GET", "audit", {**WIDE, "format": fmt}, {}, BASE)
        assert response.mimetype in operation["200"]["content"] and response.mimetype == media


def test_validator_catches_drift():
    with pytest.raises(AssertionError):
        validate({"value": [{"id": "x"}]}, {"$ref": "#/components/schemas/AuditPage"})
    with pytest.raises(AssertionError):
        validate({"error": {"code": "X"}}, {"$ref": "#/components/schemas/Error"})


def test_served_document_is_the_same(api: Api):
    assert api.handle("GET", "openapi.json", {}, {}, BASE).json() == DOC
