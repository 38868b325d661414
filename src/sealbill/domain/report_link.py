"""The signed token of the "not for me" link printed in every invoice mail.

The token names the invoice by its number (already printed in the mail, so the link discloses
nothing new: no database id, no counter) and carries an HMAC-SHA256 of (organization, number)
under the installation's secret key. No state: nothing is stored until someone uses the link.

>>> t = token(b"k", 7, "F-000012")
>>> number_of(b"k", 7, t)
'F-000012'
>>> number_of(b"k", 8, t) is None, number_of(b"other", 7, t) is None
(True, True)
>>> number_of(b"k", 7, t[:-1] + ("0" if t[-1] != "0" else "1")) is None
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def _mac(key: bytes, org_id: int, number: str) -> str:
    return hmac.new(key, f"not-for-me|{org_id}|{number}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def token(key: bytes, org_id: int, number: str) -> str:
    body = base64.urlsafe_b64encode(number.encode()).decode().rstrip("=")
    return f"{body}.{_mac(key, org_id, number)}"


def number_of(key: bytes, org_id: int, value: str) -> str | None:
    """The invoice number a genuine token names, or None (forged, altered, malformed)."""
    body, _, mac = value.partition(".")
    try:
        number = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return number if hmac.compare_digest(mac, _mac(key, org_id, number)) else None


def url(base: str, slug: str, key: bytes, org_id: int, number: str) -> str:
    return f"{base.rstrip('/')}/portal/{slug}/not-for-me/{token(key, org_id, number)}"
