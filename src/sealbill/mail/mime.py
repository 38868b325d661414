"""Build the one MIME message of one invoice for one account, from resolved recipients.

Invariants:
- recipients are :class:`~sealbill.store.parties.records.Recipient` objects (a contact id and the
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

How: the structure is fixed (multipart/mixed: multipart/alternative text + HTML, then the PDF),
so the bytes are written directly — the same bytes, header for header, that the ``email``
package's ``EmailMessage`` with ``policy.SMTP`` produced (tests compare the two). A header
value is written as-is only when it is plain ASCII that needs no quoting, encoding or folding
(:func:`_simple`); any other address header or file name is rendered by the ``email`` package
itself (``policy.SMTP``), one header at a time. A non-ASCII subject is RFC 2047 encoded here
(UTF-8, base64 encoded-words of whole characters, folded lines): the ``email`` package's own
folding of it cost more than the rest of the message; the tests decode it back with the
standard library and compare.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

import pybase64

from sealbill.store.parties.records import Recipient

# Unicode characters that some clients render as a line break even though they are not CR/LF.
_LINE_LIKE = {"\u0085", "\u2028", "\u2029"}
# Every character a header value may not carry: Unicode categories Cc (C0 and C1 controls, DEL),
# Zl and Zp (U+2028, U+2029) and _LINE_LIKE — the test compares it with unicodedata over every
# code point. A search costs a fraction of a µs where a category lookup per character of an
# accented subject cost ~5 µs.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_LINE = 78  # policy.SMTP.max_line_length, CRLF excluded
# Values written without the email package: words of printable ASCII, single spaces.
_PLAIN_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*\Z")
# A display name that needs no quoting: atext words (RFC 5322), single spaces.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_ATOM_PHRASE = re.compile(rf"{_ATEXT}(?: {_ATEXT})*\Z")
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")
_DOMAIN = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\Z")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.\-_]+@[A-Za-z0-9.\-]+>\Z")
_FILENAME = re.compile(r"[A-Za-z0-9._\-]+\Z")
_WORD_BYTES = 42  # UTF-8 bytes per encoded-word: "=?utf-8?b?" + 56 + "?=" fits any line


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
    if _UNSAFE.search(value) is None:
        return value  # found by one search, not by a category lookup per character
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


def _folded(name: str, value: Any) -> bytes:
    """One header exactly as ``EmailMessage(policy=SMTP)`` serializes it."""
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


def _simple_address(address: Address) -> str | None:
    """``Name <local@domain>`` when no quoting or encoding is needed, else None."""
    name, local, domain = address.display_name, address.username, address.domain
    if not (_DOT_ATOM.match(local) and _DOMAIN.match(domain)):
        return None
    if not name:
        return f"{local}@{domain}"
    if "=?" in name or not _ATOM_PHRASE.match(name):
        return None
    return f"{name} <{local}@{domain}>"


def _address_header(name: str, addresses: Sequence[Address]) -> bytes:
    plain = [_simple_address(a) for a in addresses]
    if all(p is not None for p in plain):
        line = f"{name}: {', '.join(p for p in plain if p is not None)}"
        if len(line) <= _MAX_LINE:
            return line.encode("ascii") + b"\r\n"
    return _folded(name, list(addresses))


def _text_header(name: str, value: str) -> bytes:
    """An unstructured header (the subject): as-is when plain ASCII, else RFC 2047."""
    if value.isascii():
        if (len(name) + 2 + len(value) <= _MAX_LINE and "=?" not in value
                and _PLAIN_TEXT.match(value)):
            return f"{name}: {value}\r\n".encode("ascii")
        return _folded(name, value)
    words = [base64.b64encode(chunk).decode("ascii") for chunk in _whole_characters(
        value.encode("utf-8"), _WORD_BYTES)]
    return (f"{name}: " + "\r\n ".join(f"=?utf-8?b?{w}?=" for w in words) + "\r\n").encode(
        "ascii")


def _whole_characters(raw: bytes, most: int) -> list[bytes]:
    """UTF-8 ``raw`` cut into the longest runs of whole characters of at most ``most`` bytes
    (RFC 2047 section 5: an encoded-word holds whole characters): a cut never falls before a
    continuation byte (``10xxxxxx``). An empty ``raw`` is one empty run."""
    runs, start = [], 0
    while len(raw) - start > most:
        end = start + most
        while raw[end] & 0xC0 == 0x80:
            end -= 1
        runs.append(raw[start:end])
        start = end
    runs.append(raw[start:])
    return runs


def _date_header(date: datetime) -> bytes:
    """``Date: <RFC 5322 date>``, remembered per instant and UTC offset (a run's envelopes share
    their creation time; equal instants with equal offsets have the same wall time)."""
    return _date_line(date, date.utcoffset())


@lru_cache(maxsize=64)
def _date_line(date: datetime, offset: timedelta | None) -> bytes:
    return b"Date: " + format_datetime(date).encode("ascii") + b"\r\n"


@lru_cache(maxsize=64)
def _from_header(name: str, email: str) -> bytes:
    return _folded("From", Address(display_name=name, addr_spec=email))


def _message_id_header(message_id: str) -> bytes:
    line = f"Message-ID: {message_id}"
    if len(line) <= _MAX_LINE and _MESSAGE_ID.match(message_id):
        return line.encode("ascii") + b"\r\n"
    return _folded("Message-ID", message_id)


@lru_cache(maxsize=64)
def _disposition(filename: str) -> bytes:
    line = f'Content-Disposition: attachment; filename="{filename}"'
    if _FILENAME.match(filename) and len(line) <= _MAX_LINE:
        return line.encode("ascii") + b"\r\n"
    part = EmailMessage(policy=SMTP)
    part["Content-Disposition"] = "attachment"
    part.set_param("filename", filename, header="Content-Disposition", replace=True)
    return _folded("Content-Disposition", part["Content-Disposition"])


def base64_lines(data: bytes) -> bytes:
    """``data`` in base64, 76 characters a line, each line ended by CRLF (as ``email``).

    pybase64's ``encodebytes`` is the standard library's (same lines), SIMD-encoded: about
    three times faster on an invoice PDF than line-by-line ``binascii``. (Encoding without line
    breaks, then cutting the lines with ``struct`` and joining them with CRLF, measured a third
    faster in a loop of its own but 50 % slower inside the bench's senders: not kept, see
    ``bench/RESULTS.md``.)"""
    if not data:
        return b""
    return pybase64.encodebytes(data).replace(b"\n", b"\r\n")


def build_message(*, sender: Sender, recipients: Sequence[Recipient],
                  display_names: Mapping[int, str], archive_email: str | None,
                  message_id: str, date: datetime, content: Content) -> Outgoing:
    """Serialize the invoice message (CRLF, as ``email.policy.SMTP`` would); unsigned."""
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

    stem = hashlib.sha256(message_id.encode()).hexdigest()[:24]
    mixed, alternative = f"=_sealbill_{stem}_0".encode(), f"=_sealbill_{stem}_1".encode()
    data = b"".join((
        _from_header(sender.name, sender.email),
        _address_header("To", to),
        _text_header("Subject", content.subject),
        _date_header(date),
        _message_id_header(message_id),
        b"Auto-Submitted: auto-generated\r\n",
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/mixed;\r\n boundary="', mixed, b'"\r\n\r\n',
        b"--", mixed, b"\r\n",
        b'Content-Type: multipart/alternative;\r\n boundary="', alternative, b'"\r\n\r\n',
        b"--", alternative, b"\r\n",
        b'Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset="utf-8"\r\n',
        b"\r\n", base64_lines(content.text),
        b"\r\n--", alternative, b"\r\n",
        b'Content-Transfer-Encoding: base64\r\nContent-Type: text/html; charset="utf-8"\r\n'
        b"MIME-Version: 1.0\r\n",
        b"\r\n", base64_lines(content.html),
        b"\r\n--", alternative, b"--\r\n",
        b"\r\n--", mixed, b"\r\n",
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n",
        _disposition(content.pdf_filename),
        b"MIME-Version: 1.0\r\n",
        b"\r\n", base64_lines(content.pdf),
        b"\r\n--", mixed, b"--\r\n",
    ))
    rcpt_to = tuple(r.email for r in recipients)
    if archive_email:
        check_header_value(archive_email, "archive address")
        rcpt_to = (*rcpt_to, archive_email)
    return Outgoing(message_id=message_id, mail_from=sender.email, rcpt_to=rcpt_to, data=data)
