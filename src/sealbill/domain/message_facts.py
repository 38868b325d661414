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

How: :func:`parse_message` reads the *strict form* — the only form sealbill writes — itself:
every line ends with CRLF (no bare CR or LF), header sections are ASCII ``name: value`` fields
with folded continuations, a multipart body is exactly ``--boundary`` delimiter lines with no
preamble nor epilogue, no line elsewhere even starts like a delimiter of an enclosing part, the
MIME headers of a part appear at most once, and each leaf is base64 that decodes strictly.
Header values are read with the standard library's ``compat32`` semantics (``Message``,
``getaddresses``, ``decode_header``) from the fields found, so on the strict form the result is
the one the ``compat32`` parser gives (the tests compare them on generated and hostile
messages). Anything outside the strict form is parsed by the ``compat32`` parser (so the guard
can still report what it says) **and** carries a defect: the guard refuses it (fail closed).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from functools import cached_property

RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc",
                     "apparently-to", "delivered-to", "x-original-to")
NOT_STRICT = "message: not in the strict form sealbill writes"
_FIELD = re.compile(r"[!-9;-~]+:")  # RFC 5322 field name (printable ASCII but ':'), colon
_HEADER_BYTE = re.compile(rb"[^\t\r\n -~]")  # what may not appear in a header section
_MIME_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition")
_MULTIPARTS = ("multipart/mixed", "multipart/alternative", "multipart/related")
_MAX_DEPTH = 4


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


def parse_message(data: bytes) -> ParsedMessage:
    """What the bytes say; a defect unless they are in the strict form (see the module doc)."""
    try:
        return _parse_strict(data)
    except _NotStrict as exc:
        parsed = parse_message_compat32(data)
        parsed.defects.insert(0, f"{NOT_STRICT}: {exc}")
        return parsed


def parse_message_compat32(data: bytes) -> ParsedMessage:
    """The same facts through the standard library's ``compat32`` parser (any message)."""
    # compat32 parses several times faster than the modern policy and keeps raw header values;
    # addresses are then read with getaddresses, which sees every address of a header.
    parsed = ParsedMessage()
    msg = message_from_bytes(data, policy=compat32)
    if msg.defects:
        parsed.defects.extend(f"message: {type(d).__name__}" for d in msg.defects)
    _read_headers(msg, parsed)
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            parsed.defects.append(f"part {part.get_content_type()}: no decodable payload")
            continue
        parsed.parts.append(Part(part.get_content_type(), part.get_filename(), payload))
    return parsed


def _read_headers(msg: Message, parsed: ParsedMessage) -> None:
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


class _NotStrict(ValueError):
    """The bytes are outside the strict form: parse them leniently and refuse them."""


def _parse_strict(data: bytes) -> ParsedMessage:
    # A bare CR or LF is refused in header sections (below); in a body it cannot hide: the
    # delimiters are matched with their CRLFs and every leaf is strict base64 once its CRLFs
    # are removed, so a stray CR or LF anywhere else makes the message non-strict too.
    msg, body = _entity(data)
    parsed = ParsedMessage()
    _read_headers(msg, parsed)
    _walk(msg, body, (), parsed.parts)
    return parsed


def _entity(data: bytes) -> tuple[Message, bytes]:
    """Split one entity into its header fields (as a ``compat32`` message) and its body."""
    cut = data.find(b"\r\n\r\n")
    if cut <= 0:
        raise _NotStrict("no header section")
    head = data[:cut]
    if _HEADER_BYTE.search(head):
        raise _NotStrict("a header with a non-ASCII or control byte")
    fields: list[list[str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if "\r" in line or "\n" in line:
            raise _NotStrict("a bare CR or LF in a header section")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise _NotStrict("a continuation line before any header")
            fields[-1][1] += "\r\n" + line
            continue
        if not _FIELD.match(line):
            raise _NotStrict(f"not a header field: {line[:60]!r}")
        name, value = line.split(":", 1)
        fields.append([name, value.lstrip(" \t")])
    msg = Message()  # compat32: values stored as read, header semantics of the parser
    for name, value in fields:
        msg[name] = value
    return msg, data[cut + 4:]


def _walk(msg: Message, body: bytes, enclosing: tuple[bytes, ...], parts: list[Part]) -> None:
    for name in _MIME_FIELDS:
        if len(msg.get_all(name, [])) > 1:
            raise _NotStrict(f"{name} appears more than once in a part")
    if "content-type" not in msg:
        raise _NotStrict("a part without Content-Type")
    ctype = msg.get_content_type()
    if msg.get_content_maintype() == "multipart":
        boundary = msg.get_boundary()
        if (ctype not in _MULTIPARTS or boundary is None or not boundary.isascii()
                or "content-transfer-encoding" in msg or len(enclosing) >= _MAX_DEPTH):
            raise _NotStrict(f"an unexpected multipart ({ctype})")
        bounds = (boundary.encode("ascii"), *enclosing)
        for child in _children(body, bounds):
            child_msg, child_body = _entity(child)
            _walk(child_msg, child_body, bounds, parts)
        return
    if msg.get_content_maintype() == "message":
        raise _NotStrict("an embedded message")
    if str(msg.get("content-transfer-encoding", "")).lower() != "base64":
        raise _NotStrict(f"part {ctype} is not base64")
    try:
        payload = binascii.a2b_base64(body.replace(b"\r\n", b""), strict_mode=True)
    except binascii.Error as exc:
        raise _NotStrict(f"part {ctype}: invalid base64 ({exc})") from None
    parts.append(Part(ctype, msg.get_filename(), payload))


def _children(body: bytes, bounds: tuple[bytes, ...]) -> list[bytes]:
    """The body parts between ``--boundary`` lines: no preamble, no epilogue, and no other
    line that starts like a delimiter of this part or of an enclosing one."""
    delimiter = b"--" + bounds[0]
    opening, closing = delimiter + b"\r\n", b"\r\n" + delimiter + b"--\r\n"
    if not body.startswith(opening) or not body.endswith(closing):
        raise _NotStrict("a multipart body with a preamble or an epilogue")
    children = body[len(opening):len(body) - len(closing)].split(b"\r\n" + opening)
    for child in children:
        for bound in bounds:
            if child.startswith(b"--" + bound) or b"\n--" + bound in child:
                raise _NotStrict("a line that looks like a MIME delimiter")
    return children
