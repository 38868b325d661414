"""What an outgoing message says, read back from its bytes: the facts the guard judges.

Pure value types (standard library only); the reading itself is
:mod:`sealbill.mail.readback` (it parses MIME and decodes base64 with a C library).

Invariants: ``header_counts`` counts every occurrence of a header (a second ``To:`` or an
injected ``Bcc:`` is seen, not merged); ``addresses`` holds every address of each
recipient-bearing header, domain lower-cased; ``parts`` are the decoded leaves in order;
``defects`` lists anything that kept the bytes from being read cleanly — the guard refuses a
message with any defect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc",
                     "apparently-to", "delivered-to", "x-original-to")
NOT_STRICT = "message: not in the strict form sealbill writes"


@dataclass(frozen=True)
class Part:
    content_type: str
    filename: str | None
    payload: bytes

    @cached_property
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
