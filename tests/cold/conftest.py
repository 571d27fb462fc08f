"""Fixtures of the cold-tier tests."""

from __future__ import annotations

import pytest

from tests.constants import TENANT


@pytest.fixture
def env(storage_connection_string: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "M365_TENANT_ID": TENANT, "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string,
        "AUDIT_TABLE_PREFIX": unique_prefix, "AUDIT_ARCHIVE_CONTAINER": f"{unique_prefix.lower()}-a",
        "AUDIT_COLD_CONTAINER": f"{unique_prefix.lower()}-c", "AUDIT_QUEUE_NAME": unique_prefix.lower(),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
