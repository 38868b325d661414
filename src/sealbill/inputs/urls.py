"""URLs sealbill puts into mails: https only (http only to a loopback host, for testing)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sealbill.inputs.text import text_problem

MAX_URL = 500


def link_base_problem(url: str) -> str | None:
    """Why ``url`` cannot be the base of a link mailed to a customer, or None."""
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    if (problem := text_problem(url)) or any(ch.isspace() for ch in url):
        return problem or "white space in a URL"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if not host:
        return f"expected an https:// URL with a host, got {url!r:.60}"
    if parts.username or parts.password:
        return "a URL with a user name or password is refused"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(host):
        return None
    return f"expected an https:// URL (http only on loopback), got scheme {parts.scheme!r:.20}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
