"""A faithful local simulator of the Office 365 Management Activity API and its Entra tenant.

Development only (tests, `make run`, benchmarks); never deployed. See
docs/api-behaviour.md ("The simulator") for the behaviour it imitates, and simulator/README.md.

    from simulator import Simulator, SimulatorServer, synthetic
    sim = Simulator(page_size=3)
    with SimulatorServer(sim) as server:
        ...  # https://127.0.0.1:<port>, trust server.ca_path
"""

from __future__ import annotations

from . import synthetic
from .ca import ClientCertificate, make_client_certificate
from .knobs import OPERATIONS, Injection, Knobs
from .server import SimulatorServer
from .state import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    READ_DLP_ROLE,
    READ_ROLE,
    App,
    Blob,
    LoggedRequest,
    ManagedIdentity,
    Simulator,
    Subscription,
    Tenant,
    Webhook,
)

__all__ = [
    "DEFAULT_AUDIENCE", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_TENANT_ID", "OPERATIONS", "READ_DLP_ROLE",
    "READ_ROLE", "App", "Blob", "ClientCertificate", "Injection", "Knobs", "LoggedRequest", "ManagedIdentity", "Simulator",
    "SimulatorServer", "Subscription", "Tenant", "Webhook", "make_client_certificate", "synthetic",
]
