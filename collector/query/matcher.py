"""A query plan's filters as one predicate over normalized entries (pure)."""

from __future__ import annotations

from collections.abc import Callable

from ..models import FIELDS, AuditEntry
from .params import QueryPlan


def matcher(plan: QueryPlan) -> Callable[[AuditEntry], bool]:
    """A predicate applying every filter of the plan case-insensitively, the driving value included
    (index keys are hashes, so the scan's value is re-checked too)."""
    checks: list[Callable[[AuditEntry], bool]] = []

    def one_of(attr: str, values: tuple[str, ...]) -> None:
        if values:
            folded = frozenset(v.casefold() for v in values)
            checks.append(lambda e: getattr(e, attr).casefold() in folded)

    one_of("user", plan.users)
    one_of("operation", plan.operations)
    one_of("workload", plan.workloads)
    one_of("result", plan.results)
    one_of("clientIp", plan.client_ips)
    one_of("contentType", plan.content_types)
    if plan.record_types:
        types = frozenset(plan.record_types)
        checks.append(lambda e: e.recordType in types)
    if plan.object_prefix:
        prefix = plan.object_prefix.casefold()
        checks.append(lambda e: e.object.casefold().startswith(prefix))
    if plan.q:
        needle = plan.q.casefold()
        checks.append(lambda e: any(needle in str(v).casefold() for v in (getattr(e, f) for f in FIELDS) if v is not None))
    return lambda entry: all(check(entry) for check in checks)
