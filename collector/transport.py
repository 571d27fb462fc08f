"""The HTTP transport of the storage SDK clients: requests' view of the environment read once.

Why: with `trust_env` on (azure-core's default, `use_env_settings=True`), requests reads the
process environment again on every request: `Session.merge_environment_settings` calls
`utils.get_environ_proxies`, whose `urllib.request.getproxies_environment` and
`proxy_bypass_environment` each walk `os.environ`, and looks up `REQUESTS_CA_BUNDLE` and
`~/.netrc`. Measured on Azurite (a window write and its read back, tests' sizes), that is about
a fifth of the client CPU of a table request, and every archive, index, ledger, queue and alert
request pays it. A running worker's environment does not change, so when it names no proxy the
transport turns `use_env_settings` off and takes the one thing left that requests would have
read, a CA bundle (`REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`), once. When a proxy variable
is set (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, either case) requests' own per-request
handling stays: NO_PROXY's rules depend on each request's host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from azure.core.pipeline.transport import RequestsTransport

PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


def transport_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """RequestsTransport's keyword arguments for this environment (pure)."""
    env = os.environ if environ is None else environ
    if any(name.lower() in PROXY_VARIABLES for name in env):
        return {}
    options: dict[str, Any] = {"use_env_settings": False}
    bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def storage_transport() -> RequestsTransport:
    """A transport for storage clients, opened now (not lazily from several threads at once)."""
    transport = RequestsTransport(**transport_options())
    transport.open()
    return transport
