"""Shared fixtures: a clean environment for every test and one Azurite for the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devtools import azurite as azurite_launcher

_OURS = ("M365_", "AUDIT_", "COLLECT_", "QUERY_", "AZURE_", "IDENTITY_", "MSI_")


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Each test starts without our settings or the machine's CA overrides (tests set their own)."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(_OURS) or name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def azurite() -> Iterator[azurite_launcher.Azurite]:
    """One Azurite per test session, on free ports, in memory; tests isolate by unique names."""
    instance = azurite_launcher.start(in_memory=True)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def storage_connection_string(azurite: azurite_launcher.Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def unique_prefix() -> str:
    """A table prefix / name stem no other test uses (Azurite is shared by the session)."""
    return "t" + uuid.uuid4().hex[:10]
