"""The storage transport reads the environment once unless it names a proxy (transport.py)."""

from __future__ import annotations

import os

import pytest
import requests

from collector.transport import PROXY_VARIABLES, storage_transport, transport_options


def test_without_a_proxy_the_environment_is_read_once_and_a_ca_bundle_kept() -> None:
    assert transport_options({"PATH": "/bin"}) == {"use_env_settings": False}
    assert transport_options({"REQUESTS_CA_BUNDLE": "/ca.pem", "CURL_CA_BUNDLE": "/other.pem"}) == {
        "use_env_settings": False, "connection_verify": "/ca.pem"}
    assert transport_options({"CURL_CA_BUNDLE": "/other.pem"})["connection_verify"] == "/other.pem"


def test_a_proxy_variable_in_any_case_keeps_requests_per_request_handling() -> None:
    for name in ("HTTPS_PROXY", "http_proxy", "All_Proxy", "NO_PROXY"):
        assert transport_options({name: "x", "REQUESTS_CA_BUNDLE": "/ca.pem"}) == {}


def test_the_transport_session_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    transport = storage_transport()
    try:
        assert isinstance(transport.session, requests.Session) and transport.session.trust_env is False
        assert transport.connection_config.verify == "/etc/ssl/certs/ca-certificates.crt"
    finally:
        transport.close()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.contoso.com:8080")
    transport = storage_transport()
    try:
        assert transport.session is not None and transport.session.trust_env is True
    finally:
        transport.close()
