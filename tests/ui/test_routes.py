"""The search page's routes without a browser: what `Api`, `collector serve` and the Function App send,
and that the assets ship with the app (package data, not excluded by .funcignore)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import json
import re
import urllib.parse
from pathlib import Path

import fastapi
import pytest
import requests

from collector import ui
from collector.api import Api
from tests.app_functions import functions

ROOT = Path(__file__).resolve().parents[2]
PAGE = ("", "app.js", "app.css")


def no_services() -> object:
    raise AssertionError("the page needs no storage")


@pytest.mark.parametrize("route, media_type", [("ui", "text/html"), ("ui/", "text/html"), ("ui/index.html", "text/html"),
                                               ("ui/app.js", "text/javascript"), ("ui/app.css", "text/css")])
def test_api_serves_the_page_and_its_assets_with_the_security_headers(route, media_type):
    response = Api(no_services).handle("GET", route, [])  # type: ignore[arg-type]  # a factory that must not run
    assert response.status == 200 and response.mimetype == media_type
    assert response.headers["Content-Security-Policy"] == ui.CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in ui.CONTENT_SECURITY_POLICY and "unsafe-inline" not in ui.CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.read() == (ROOT / "collector" / "ui" / (route[3:] or "index.html")).read_bytes()


@pytest.mark.parametrize("route", ["ui/nope.js", "ui/../api.py", "ui/__init__.py", "ui/app.js/x"])
def test_anything_else_under_ui_is_a_json_404(route):
    response = Api(no_services).handle("GET", route, [])  # type: ignore[arg-type]
    assert response.status == 404 and response.json()["error"]["code"] == "NotFound"


def test_the_page_loads_nothing_from_another_origin_and_runs_no_inline_script():
    html = ui.asset("")
    assert html is not None
    text = html[0].decode()
    assert re.findall(r"<script\b[^>]*>", text) == ['<script src="/api/ui/app.js" defer>']
    assert not re.search(r"<[^>]+\s(on[a-z]+|style)=", text)  # no inline handlers or styles (the CSP forbids them)
    for name in PAGE:
        found = ui.asset(name)
        assert found is not None
        assert not re.search(rb"https?://|//cdn|@import", found[0]), name


def test_the_assets_are_deployed_with_the_app():
    """func publish packs the folder minus .funcignore: no pattern may exclude collector/ui/."""
    patterns = [line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for name in ui.ASSETS:
        path = f"collector/ui/{name}"
        parts = path.split("/")
        for pattern in patterns:
            bare = pattern.rstrip("/")
            assert not fnmatch.fnmatch(path, bare) and not any(fnmatch.fnmatch(p, bare) for p in parts), (path, pattern)


def test_serve_answers_get_and_head(served: str):
    with requests.Session() as session:
        page = session.get(served + "/api/ui", timeout=10)
        head = session.head(served + "/api/ui/app.js", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == ui.CONTENT_SECURITY_POLICY
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 1000


def test_function_app_route_is_anonymous_and_serves_the_page():
    fn = functions()["get_search_page"]
    raw = [json.loads(b) for b in fn.get_raw_bindings()]  # type: ignore[attr-defined]  # untyped in azure.functions
    trigger = next(b for b in raw if b["type"] == "httpTrigger")
    # Anonymous: the page holds no data; the data routes keep authLevel function (tests/query).
    assert trigger["route"] == "ui/{*asset}" and trigger["authLevel"].lower() == "anonymous"
    assert [m.lower() for m in trigger["methods"]] == ["get"]
    for name in PAGE:
        response = call_page(name)
        assert response.status_code == 200 and response.body == ui.asset(name)[0]  # type: ignore[index]
        assert response.headers["content-security-policy"] == ui.CONTENT_SECURITY_POLICY
    assert call_page("../function_app.py").status_code == 404


def call_page(asset: str) -> fastapi.Response:
    scope = {"type": "http", "method": "GET", "scheme": "https", "path": "/api/ui/" + urllib.parse.quote(asset),
             "root_path": "", "query_string": b"", "headers": [(b"host", b"func-auditkeep.azurewebsites.net")],
             "server": ("func-auditkeep.azurewebsites.net", 443), "path_params": {"asset": asset}}
    handler = functions()["get_search_page"].get_user_function()  # type: ignore[attr-defined]
    # On a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        response = pool.submit(asyncio.run, handler(fastapi.Request(scope))).result()
    assert isinstance(response, fastapi.Response) and not isinstance(response, fastapi.responses.StreamingResponse)
    return response
