"""The audit log search page (`GET /api/ui`): static HTML, CSS and JavaScript shipped in this package.

No build step and nothing from a CDN: the page must work where the internet is filtered. It holds no
data; every record it shows comes from `/api/audit`, `/api/audit/{id}` and `/api/health`, called by
the browser with the user's own credentials (docs/search-page.md). `collector.api.ui_response` wraps
these bytes in an HTTP response with the page's security headers.
"""

from __future__ import annotations

from importlib import resources

# The only names served: a fixed table, so no request path ever reaches the file system.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
INDEX = "index.html"

# Scripts and styles from this origin only (no inline script, no eval, no CDN); fetch to this origin
# only; the page may not be framed (clickjacking) nor submit a form elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load, so a deployment's new page is used at once.
    "Cache-Control": "no-cache",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and Content-Type of a page asset (`""` is the page itself), or None if there is no such asset."""
    name = name or INDEX
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return resources.files(__name__).joinpath(name).read_bytes(), content_type
