"""The opaque `cursor` of a next link: an index order key with a checksum, base64url-encoded (pure)."""

from __future__ import annotations

import base64
import hashlib
import re

from ..errors import QueryError

CURSOR = "cursor"  # the query parameter that carries it
CURSOR_PATTERN = r"[A-Za-z0-9_-]{19,2000}"  # also the OpenAPI pattern
_CURSOR_TEXT = re.compile(CURSOR_PATTERN)
# An order key (keys.order_key): ten digits of inverted time, then the escaped record id and
# organization; or the ten digits alone, a position between two seconds (a page whose budget ran
# out between rows: service.Mark).
_ORDER_KEY = re.compile(r"[0-9]{10}(?:[^/\\#?\x00-\x1f\x7f]{1,1100})?")


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(b"auditkeep-cursor-v1" + payload).digest()[:4]


def encode_cursor(order_key: str) -> str:
    """The opaque cursor of an order key: base64url(checksum + key). The checksum catches a
    truncated or edited cursor, which would otherwise resume at the wrong place."""
    payload = order_key.encode("utf-8")
    return base64.urlsafe_b64encode(_checksum(payload) + payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> str:
    """The order key of a cursor; QueryError (400) when it was not produced by encode_cursor."""
    problem = QueryError("cursor is not valid: use the @odata.nextLink of the previous page unchanged",
                         parameter=CURSOR, code="InvalidCursor")
    if not _CURSOR_TEXT.fullmatch(text):
        raise problem
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = raw[4:].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise problem from None
    if raw[:4] != _checksum(raw[4:]) or not _ORDER_KEY.fullmatch(key):
        raise problem
    return key
