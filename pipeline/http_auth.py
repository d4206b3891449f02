"""Bearer tokens for the project's HTTP doors (the ingest endpoint, the worker's views).

The scheme name is case-insensitive (RFC 7235: ``bearer``, ``Bearer`` and ``BEARER`` are one scheme); the token
is compared in constant time. A token that is empty or only whitespace protects nothing and is refused when the
server starts, not discovered when a request gets through.

May import: no other part of the package."""

from __future__ import annotations

import hmac
import ipaddress


class WeakToken(ValueError):
    """A configured token that would let anyone in."""


def require_token(token: str, setting: str) -> str:
    if not token.strip():
        raise WeakToken(f"{setting} is empty or blank: the endpoint will not run unauthenticated")
    if token != token.strip():
        raise WeakToken(f"{setting} starts or ends with whitespace, which an Authorization header cannot carry")
    return token


def bearer_ok(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (any case of the scheme, one or more spaces between)."""
    if not header or not token:
        return False
    scheme, _, supplied = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(supplied.strip().encode(), token.encode())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
