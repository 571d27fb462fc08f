"""GET /api/audit: query parameters → a validated plan (pure), and the plan run over the index views.

- `params`  the parameter table (also the OpenAPI document's), `QueryPlan`, `parse_request`
- `cursor`  the opaque cursor of a next link: encode/decode of an order key
- `matcher` the plan's filters as one predicate over `AuditEntry`
- `service` `QueryService`: JSON pages and exports over `AuditIndex.scan`, the only part that reads storage

Filter values never become OData text: user and operation reach storage only as hashes, everything
else is matched in Python.
"""
