"""The Function App's functions by name, for every test that calls a handler or reads a binding."""

from __future__ import annotations

import functools

import function_app


@functools.cache
def functions() -> dict[str, object]:
    # get_functions() may only be called once per app: a second call reports duplicate names.
    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}
