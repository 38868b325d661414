"""The MIME builder as it was before the direct serializer: ``EmailMessage`` + ``policy.SMTP``.

Kept, unchanged, as the reference the direct builder in ``sealbill.mail.mime`` is compared with
(``test_mime_direct.py``): same bytes for plain values, same meaning for every value.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sealbill.mail.mime import Content, Outgoing, Sender, UnsafeHeaderValue
from sealbill.store.parties.records import Recipient

_LINE_LIKE = {"\u0085", "\u2028", "\u2029"}


def check_header_value(value: str, what: str) -> str:
    bad = [ch for ch in value
           if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _LINE_LIKE]
    if bad:
        raise UnsafeHeaderValue(f"{what} contains control characters {bad!r}: {value!r}")
    return value


def _address(recipient: Recipient, display_name: str) -> Address:
    check_header_value(recipient.email, f"address of contact {recipient.contact_id}")
    check_header_value(display_name, f"name of contact {recipient.contact_id}")
    if "@" not in recipient.email:
        raise UnsafeHeaderValue(f"not an address: {recipient.email!r}")
    local, domain = recipient.email.rsplit("@", 1)
    # Address() quotes the display name as needed; it cannot produce a second header.
    return Address(display_name=display_name.strip(), username=local, domain=domain)


def build_message_reference(*, sender: Sender, recipients: Sequence[Recipient],
                  display_names: Mapping[int, str], archive_email: str | None,
                  message_id: str, date: datetime, content: Content) -> Outgoing:
    """Serialize the invoice message (CRLF, ``email.policy.SMTP``); unsigned."""
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    strays = [type(r).__name__ for r in recipients if not isinstance(r, Recipient)]
    if strays:
        raise TypeError(f"recipients must be Recipient records, not {strays}")
    to = [_address(r, display_names.get(r.contact_id, "")) for r in recipients]
    check_header_value(content.subject, "subject")
    check_header_value(content.pdf_filename, "attachment file name")
    check_header_value(sender.name, "sender name")
    check_header_value(message_id, "message-id")

    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=sender.name, addr_spec=sender.email)
    msg["To"] = to
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(content.text, maintype="text", subtype="plain", cte="base64",
                    params={"charset": "utf-8"})
    msg.add_alternative(content.html, maintype="text", subtype="html", cte="base64",
                        params={"charset": "utf-8"})
    msg.add_attachment(content.pdf, maintype="application", subtype="pdf",
                       filename=content.pdf_filename)
    _fix_boundaries(msg, message_id)
    rcpt_to = tuple(r.email for r in recipients)
    if archive_email:
        check_header_value(archive_email, "archive address")
        rcpt_to = (*rcpt_to, archive_email)
    return Outgoing(message_id=message_id, mail_from=sender.email, rcpt_to=rcpt_to,
                    data=msg.as_bytes(policy=SMTP))


def _fix_boundaries(msg: EmailMessage, seed: str) -> None:
    # The email package draws random boundaries; derive them from the Message-ID instead so
    # that the same outbox row always serializes to the same bytes.
    stem = hashlib.sha256(seed.encode()).hexdigest()[:24]
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_sealbill_{stem}_{index}")
