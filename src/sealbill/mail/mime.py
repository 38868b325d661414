"""Build the one MIME message of one invoice for one account, from resolved recipients.

Invariants:
- recipients are :class:`~sealbill.store.parties.Recipient` objects (a contact id and the
  address read from that contact row), never bare strings: anything else is refused;
- ``To:`` lists exactly those recipients; there is no ``Cc:`` and no ``Bcc:`` header, ever;
- the organization's archive mailbox, when configured, is the only extra copy, and it is
  added to the **SMTP envelope only** (``RCPT TO``), not to the headers: the customer does not
  see the seller's archive address and cannot "reply all" to it. The guard checks the SMTP
  recipients are exactly the header recipients plus that archive address;
- display names and the subject may not contain a control character (CR, LF, TAB, NUL ...) or
  a Unicode line separator: such a value is refused (:class:`UnsafeHeaderValue`), never
  cleaned up, so a "Bcc:" smuggled into a contact name cannot become a header;
- the message is a pure function of its inputs (Message-ID, Date and MIME boundaries are
  derived from the stored outbox row), so a resend after a crash is byte-for-byte the same
  message with the same Message-ID;
- body parts and the PDF are base64-encoded bytes, so decoding a part gives back exactly the
  rendered bytes whose sha256 is recorded in ``documents``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sealbill.store.parties import Recipient

# Unicode characters that some clients render as a line break even though they are not CR/LF.
_LINE_LIKE = {"\u0085", "\u2028", "\u2029"}


class UnsafeHeaderValue(ValueError):
    """A value meant for a header carries a control character or a line separator."""


@dataclass(frozen=True)
class Sender:
    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1].lower()


@dataclass(frozen=True)
class Content:
    """The rendered documents of one invoice, as the bytes recorded in ``documents``."""

    subject: str
    text: bytes
    html: bytes
    pdf: bytes
    pdf_filename: str


@dataclass(frozen=True)
class Outgoing:
    """What goes to SMTP: the envelope sender and recipients and the serialized message."""

    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes


def message_id_for(invoice_id: int, envelope_id: int, domain: str) -> str:
    """The Message-ID of an envelope's message: stable across resends, unique per envelope."""
    check_header_value(domain, "message-id domain")
    return f"<inv-{invoice_id}.env-{envelope_id}@{domain}>"


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


def build_message(*, sender: Sender, recipients: Sequence[Recipient],
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
