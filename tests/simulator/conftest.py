"""Fixtures for the simulator's own tests: a Simulator on a fake clock, served over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock

from .helpers import CLIENT, NOW, SECRET, TENANT, Api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(TENANT, CLIENT, SECRET, clock=clock, page_size=3, subscribed=True, throttle_limit_per_min=None, fault_seed=7)


@pytest.fixture
def server(sim: Simulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, state_dir=tmp_path / "sim") as running:
        # msal and requests read the CA from here; the autouse fixture restores the environment.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_path))
        yield running
    assert sim.errors == [], sim.errors


@pytest.fixture
def api(sim: Simulator, server: SimulatorServer) -> Iterator[Api]:
    with requests.Session() as session:
        session.verify = str(server.ca_path)
        client = Api(sim, server, session)
        client.login()
        yield client
