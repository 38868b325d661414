"""Delivery status notifications (RFC 3464) as read from a mailbox (pure, standard library).

A relay that accepted a message may later fail to deliver it and mail back a DSN: a
``multipart/report; report-type=delivery-status`` whose ``message/delivery-status`` part holds
one block of per-message fields (``Reporting-MTA``, ``Arrival-Date``...) and one block per
recipient (``Final-Recipient``, ``Original-Recipient``, ``Action``, ``Status``,
``Diagnostic-Code``), followed by the returned message or its headers (``message/rfc822`` or
``text/rfc822-headers``), which carry the original ``Message-ID``.

:func:`parse_dsn` reads one such mail; it never guesses: a mail without a delivery-status part
is :class:`NotADsn` (an out-of-office reply, a human answer), and a DSN whose returned headers
carry no Message-ID has ``message_id`` None (the caller reports it, changes nothing).

>>> r = DsnRecipient("a@x.example", None, "failed", "5.1.1", "smtp; 550 5.1.1 unknown", "")
>>> (r.permanent_failure, r.delayed, r.reply_code)
(True, False, 550)
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_CODE = re.compile(r"\b([245]\d\d)\b")


class NotADsn(ValueError):
    """The mail is not a delivery status notification (no message/delivery-status part)."""


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block: addresses without their ``rfc822;`` type, as written."""

    final_recipient: str
    original_recipient: str | None
    action: str  # failed | delayed | delivered | relayed | expanded (lower case)
    status: str  # the enhanced status code, e.g. 5.1.1
    diagnostic: str  # Diagnostic-Code, unfolded ("smtp; 550 5.1.1 ..."), may be empty
    remote_mta: str

    @property
    def permanent_failure(self) -> bool:
        """``Action: failed`` with a 5.x.x status: the address is refused for good."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def delayed(self) -> bool:
        """Still being tried (``Action: delayed`` or a 4.x.x status): nothing is final."""
        return self.action == "delayed" or self.status.startswith("4.")

    @property
    def reply_code(self) -> int | None:
        """The SMTP reply code of the diagnostic (``550``), when it names one."""
        found = _CODE.search(self.diagnostic.split(";", 1)[-1])
        return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Dsn:
    message_id: str | None  # of the original message, with its angle brackets
    reporting_mta: str
    recipients: tuple[DsnRecipient, ...]


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def address_of(field: object) -> str:
    """``rfc822; <ap@x.example>`` -> ``ap@x.example`` (the address type dropped)."""
    text = _text(field)
    if ";" in text:
        text = text.split(";", 1)[1]
    return text.strip().strip("<>").strip()


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part (the parser splits them; a part
    read as plain text is split here on its blank lines)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = part.get_payload(decode=True) or b""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    chunks = re.split(r"\r?\n\s*\r?\n", raw.strip())
    return [HeaderParser().parsestr(chunk) for chunk in chunks if chunk.strip()]


def _original_message_id(report: Message) -> str | None:
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return _text(inner.get("Message-ID"))
        elif kind == "text/rfc822-headers":
            data = part.get_payload(decode=True) or b""
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            headers = HeaderParser().parsestr(text, headersonly=True)
            if headers.get("Message-ID"):
                return _text(headers.get("Message-ID"))
    return None


def parse_dsn(data: bytes) -> Dsn:
    """The DSN of a mail's bytes, or :class:`NotADsn` saying why it is not one."""
    mail = email.message_from_bytes(data, policy=email.policy.compat32)
    status_parts = [p for p in mail.walk() if p.get_content_type() == "message/delivery-status"]
    if not status_parts:
        raise NotADsn(f"not a delivery status notification (Content-Type "
                      f"{mail.get_content_type()}, no message/delivery-status part)")
    blocks = _blocks(status_parts[0])
    if len(blocks) < 2:
        raise NotADsn("a delivery-status part without any per-recipient block")
    recipients = []
    for block in blocks[1:]:
        final = address_of(block.get("Final-Recipient"))
        status = _text(block.get("Status")).split(" ", 1)[0]
        if not final or not _STATUS.match(status):
            raise NotADsn(f"a recipient block without a Final-Recipient or a valid Status "
                          f"({final!r}, {status!r})")
        original = block.get("Original-Recipient")
        recipients.append(DsnRecipient(
            final, address_of(original) if original else None,
            _text(block.get("Action")).lower(), status,
            _text(block.get("Diagnostic-Code"))[:500], _text(block.get("Remote-MTA"))[:200]))
    return Dsn(_original_message_id(mail), _text(blocks[0].get("Reporting-MTA"))[:200],
               tuple(recipients))
