"""Fixtures of the fuzz tests: the hostile dataset in the session's Azurite, and the Api over it."""

from __future__ import annotations

import pytest

from collector.api import Api
from tests.fuzz.hostile import Fuzzed, load


@pytest.fixture(scope="session")
def fuzzed(azurite) -> Fuzzed:
    return load(azurite.connection_string)


@pytest.fixture(scope="session")
def fuzz_api(fuzzed: Fuzzed) -> Api:
    return Api(fuzzed.services, stream=True)
