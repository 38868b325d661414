"""Read back what an outgoing message really says, from its bytes (standard library only).

The guard never trusts the object a message was built from: it parses the serialized bytes,
as a receiving server would, and looks at every header that can name a recipient.

Invariants:
- every address-bearing header (To, Cc, Bcc, Resent-*, Reply-To...) is collected with its count
  of occurrences, so a second ``To:`` or an injected ``Bcc:`` line is seen, not merged;
- a header that does not parse into addresses is kept as a defect; the guard treats any defect
  as a violation (fail closed);
- parts are returned decoded (``Content-Transfer-Encoding`` undone), so their digests compare
  with the digests of the rendered documents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import compat32
from email.utils import getaddresses

RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc",
                     "apparently-to", "delivered-to", "x-original-to")


@dataclass(frozen=True)
class Part:
    content_type: str
    filename: str | None
    payload: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass
class ParsedMessage:
    header_counts: dict[str, int] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    subject: str = ""
    message_id: str = ""
    parts: list[Part] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def normalize_address(address: str) -> str:
    """Compare addresses as mail systems do: the domain is case-insensitive, the local part
    is kept as written."""
    if "@" not in address:
        return address
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def parse_message(data: bytes) -> ParsedMessage:
    # compat32 parses several times faster than the modern policy and keeps raw header values;
    # addresses are then read with getaddresses, which sees every address of a header.
    parsed = ParsedMessage()
    msg = message_from_bytes(data, policy=compat32)
    if msg.defects:
        parsed.defects.extend(f"message: {type(d).__name__}" for d in msg.defects)
    for name in msg.keys():  # noqa: SIM118 - a Message is not a dict: keys() lists repeats
        key = name.lower()
        parsed.header_counts[key] = parsed.header_counts.get(key, 0) + 1
    for key in RECIPIENT_HEADERS:
        values = [str(v) for v in msg.get_all(key, [])]
        if not values:
            continue
        pairs = getaddresses(values)
        bad = [addr for _, addr in pairs if "@" not in addr]
        if bad or not pairs:
            parsed.defects.append(f"{key}: unparsable address {bad or values!r}")
        parsed.addresses.setdefault(key, []).extend(
            normalize_address(addr) for _, addr in pairs if addr)
    parsed.subject = str(make_header(decode_header(str(msg.get("subject", "")))))
    parsed.message_id = str(msg.get("message-id", "")).strip()
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            parsed.defects.append(f"part {part.get_content_type()}: no decodable payload")
            continue
        parsed.parts.append(Part(part.get_content_type(), part.get_filename(), payload))
    return parsed
