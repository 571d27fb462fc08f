"""Constants shared by the test suites: the simulated tenant, its app registration, another organization.

All values are fictitious. Helper modules and conftest.py files import them from here; test modules
import them from here or from their suite's helper module, never from another test module.
"""

from __future__ import annotations

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"  # the customer tenant (M365_TENANT_ID, the simulator's default)
CLIENT_ID = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"  # the collector's app registration (M365_CLIENT_ID)
CLIENT_SECRET = "simulated-client-secret"  # its client secret (M365_CLIENT_SECRET)
OTHER_ORG = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # a second OrganizationId in the same records
