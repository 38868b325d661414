"""Read back what an outgoing message really says, from its bytes.

The guard never trusts the object a message was built from: it parses the serialized bytes,
as a receiving server would, and looks at every header that can name a recipient. The facts
it gets are :class:`~sealbill.domain.message_facts.ParsedMessage` (a pure value type).

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
MIME headers of a part appear at most once, and each leaf is base64 in lines of 76 characters
(the last one shorter or equal) that decodes strictly. Address headers and the subject are read
with the standard library's ``compat32`` semantics (``getaddresses``, ``decode_header``); the
MIME headers of a part (``type/subtype`` with at most one quoted parameter, as sealbill writes
them) are read by a pattern and, in any other shape, by ``compat32``'s ``Message`` — so on the
strict form the result is the one the ``compat32`` parser gives (the tests compare them on
generated, hostile and randomly mutated messages). Anything outside the strict form is parsed by
the ``compat32`` parser (so the guard can still report what it says) **and** carries a defect:
the guard refuses it (fail closed).

Speed (this runs for every message sent): base64 is decoded by ``pybase64`` (SIMD; about seven
times faster than ``binascii`` here, ``bench/RESULTS.md``); its line structure is checked with
two slices, and the lines are cut out by position (``struct``) rather than by deleting every
CR and LF byte by byte. Recipient headers that are lists of bare addresses and subjects in
plain ASCII or UTF-8 base64 encoded words — what sealbill writes — are read by patterns; any
other value by ``getaddresses`` / ``decode_header`` (the tests compare the two readings).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from functools import lru_cache
from itertools import chain

import pybase64

from sealbill.domain.message_facts import (
    NOT_STRICT,
    RECIPIENT_HEADERS,
    ParsedMessage,
    Part,
    normalize_address,
)

_FIELD = re.compile(r"[!-9;-~]+:")  # RFC 5322 field name (printable ASCII but ':'), colon
_HEADER_BYTE = re.compile(rb"[^\t\r\n -~]")  # what may not appear in a header section
_MIME_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition")
_MULTIPARTS = ("multipart/mixed", "multipart/alternative", "multipart/related")
_MAX_DEPTH = 4
_B64_WIDTH = 76  # characters per base64 line, CRLF excluded (what email and sealbill write)
# A MIME header as sealbill writes it: "type/subtype" and at most one parameter whose quoted
# value holds no quote, backslash or line break ("; name=..." possibly folded before "name").
_SIMPLE_MIME = re.compile(r'([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*'
                          r'|attachment|inline)'
                          r'(?:;(?:\r\n)?[ \t]([A-Za-z]+)="([^"\\\r\n]*)")?\Z')

Fields = list[tuple[str, str]]
Span = tuple[int, int]  # start and end of an entity or a body in the message's bytes


class NotStrict(ValueError):
    """The bytes are outside the strict form: parse them leniently and refuse them."""


def parse_message(data: bytes) -> ParsedMessage:
    """What the bytes say; a defect unless they are in the strict form (see the module doc)."""
    try:
        return parse_strict(data)
    except NotStrict as exc:
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
    _read_headers([(name, str(value)) for name, value in msg.items()], parsed)
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            parsed.defects.append(f"part {part.get_content_type()}: no decodable payload")
            continue
        parsed.parts.append(Part(part.get_content_type(), part.get_filename(), payload))
    return parsed


def _read_headers(fields: Fields, parsed: ParsedMessage) -> None:
    values: dict[str, list[str]] = {}
    for name, value in fields:
        key = name.lower()
        parsed.header_counts[key] = parsed.header_counts.get(key, 0) + 1
        values.setdefault(key, []).append(value)
    for key in RECIPIENT_HEADERS:
        if key not in values:
            continue
        pairs = _bare_addresses(values[key]) or getaddresses(values[key])
        bad = [addr for _, addr in pairs if "@" not in addr]
        if bad or not pairs:
            parsed.defects.append(f"{key}: unparsable address {bad or values[key]!r}")
        parsed.addresses.setdefault(key, []).extend(
            normalize_address(addr) for _, addr in pairs if addr)
    parsed.subject = read_subject(values.get("subject", [""])[0])
    parsed.message_id = values.get("message-id", [""])[0].strip()


# The shapes sealbill writes, read without the standard library's general code (which costs
# about as much as the rest of the header section); any other value goes through it.
_ATOMS = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
_ADDR_SPEC = rf"{_ATOMS}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_BARE_LIST = re.compile(rf"{_ADDR_SPEC}(?:,(?:\r\n)? {_ADDR_SPEC})*\Z")
_ADDR = re.compile(_ADDR_SPEC)
_UTF8_WORDS = re.compile(r"=\?utf-8\?b\?[A-Za-z0-9+/]+={0,2}\?=(?:\r\n =\?utf-8\?b\?"
                         r"[A-Za-z0-9+/]+={0,2}\?=)*\Z")
_UTF8_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/]+={0,2})\?=")


def _bare_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``getaddresses(values)`` when every value is a list of bare addresses (dot-atoms, no
    display name, comment or quoting), else None."""
    if not all(_BARE_LIST.match(value) for value in values):
        return None
    return [("", address) for value in values for address in _ADDR.findall(value)]


def read_subject(value: str) -> str:
    """``str(make_header(decode_header(value)))``: plain ASCII text as it is, and UTF-8
    base64 encoded words (folded with CRLF and a space) decoded in one piece, as
    ``decode_header`` joins adjacent words of one charset before decoding them."""
    if "=?" not in value and "\r" not in value and "\n" not in value:
        return value
    if _UTF8_WORDS.match(value):
        words = _UTF8_WORD.findall(value)
        if all(len(word) % 4 == 0 for word in words):
            try:
                return b"".join(pybase64.b64decode(word, validate=True)
                                for word in words).decode("utf-8")
            except ValueError:  # invalid base64 or UTF-8: the standard library says what
                pass
    return str(make_header(decode_header(value)))


def parse_strict(data: bytes) -> ParsedMessage:
    """The strict form's facts, or :class:`NotStrict`."""
    # A bare CR or LF is refused in header sections (below); in a body it cannot hide: the
    # delimiters are matched with their CRLFs and every leaf is base64 lines ended by CRLF,
    # so a stray CR or LF anywhere else makes the message non-strict too.
    # Entities and bodies are spans (start, end) of ``data``, not copies: a message is read
    # without copying its parts (a copy of 80 kB is cheap alone, several a message are not).
    fields, body = _entity(data, (0, len(data)))
    parsed = ParsedMessage()
    _read_headers(fields, parsed)
    _walk(data, fields, body, (), parsed.parts)
    return parsed


def _entity(data: bytes, span: Span) -> tuple[Fields, Span]:
    """Split the entity ``data[start:end]`` into its header fields (values as ``compat32``
    stores them) and the span of its body."""
    start, end = span
    cut = data.find(b"\r\n\r\n", start, end)
    if cut <= start:
        raise NotStrict("no header section")
    head = data[start:cut]
    if _HEADER_BYTE.search(head):
        raise NotStrict("a header with a non-ASCII or control byte")
    fields: list[list[str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if "\r" in line or "\n" in line:
            raise NotStrict("a bare CR or LF in a header section")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise NotStrict("a continuation line before any header")
            fields[-1][1] += "\r\n" + line
            continue
        if not _FIELD.match(line):
            raise NotStrict(f"not a header field: {line[:60]!r}")
        name, value = line.split(":", 1)
        fields.append([name, value.lstrip(" \t")])
    return [(name, value) for name, value in fields], (cut + 4, end)


def _mime_fields(fields: Fields) -> dict[str, str]:
    """The part's MIME headers by lower-case name; each may appear at most once."""
    found: dict[str, str] = {}
    for name, value in fields:
        key = name.lower()
        if key in _MIME_FIELDS:
            if key in found:
                raise NotStrict(f"{key} appears more than once in a part")
            found[key] = value
    return found


def _walk(data: bytes, fields: Fields, body: Span, enclosing: tuple[bytes, ...],
          parts: list[Part]) -> None:
    mime = _mime_fields(fields)
    if "content-type" not in mime:
        raise NotStrict("a part without Content-Type")
    ctype, boundary, filename = _read_mime(mime, fields)
    if ctype.startswith("multipart/"):
        if (ctype not in _MULTIPARTS or boundary is None or not boundary.isascii()
                or "content-transfer-encoding" in mime or len(enclosing) >= _MAX_DEPTH):
            raise NotStrict(f"an unexpected multipart ({ctype})")
        bounds = (boundary.encode("ascii"), *enclosing)
        for child in _children(data, body, bounds):
            child_fields, child_body = _entity(data, child)
            _walk(data, child_fields, child_body, bounds, parts)
        return
    if ctype.startswith("message/"):
        raise NotStrict("an embedded message")
    if mime.get("content-transfer-encoding", "").lower() != "base64":
        raise NotStrict(f"part {ctype} is not base64")
    parts.append(Part(ctype, filename,
                      decode_base64_lines(memoryview(data)[body[0]:body[1]], ctype)))


def _read_mime(mime: dict[str, str], fields: Fields) -> tuple[str, str | None, str | None]:
    """Content type, boundary and file name, as ``compat32``'s ``Message`` reads them."""
    ctype = _SIMPLE_MIME.match(mime["content-type"])
    disposition = _SIMPLE_MIME.match(mime.get("content-disposition", "attachment"))
    if (ctype is None or disposition is None or "/" not in ctype[1]
            or ctype[2] not in (None, "boundary", "charset")
            or disposition[2] not in (None, "filename") or "/" in disposition[1]):
        return _read_mime_compat32(fields)
    boundary = ctype[3] if ctype[2] == "boundary" else None
    filename = disposition[3] if "content-disposition" in mime and disposition[2] else None
    if not (_as_read(boundary) and _as_read(filename)):
        return _read_mime_compat32(fields)
    return ctype[1].lower(), boundary, filename


def _as_read(value: str | None) -> bool:
    """Whether ``compat32`` reads this quoted parameter value as it stands: it strips a file
    name (right-strips a boundary) and unquotes both once more (``<...>`` loses its angle
    brackets); a value it would change is left to it."""
    return value is None or (value == value.strip()
                             and not (value[:1] == "<" and value[-1:] == ">"))


def _read_mime_compat32(fields: Sequence[tuple[str, str]]) -> tuple[str, str | None,
                                                                     str | None]:
    msg = Message()  # compat32: values stored as read, header semantics of the parser
    for name, value in fields:
        msg[name] = value
    return msg.get_content_type(), msg.get_boundary(), msg.get_filename()


def decode_base64_lines(body: bytes | memoryview, what: str = "part") -> bytes:
    """A leaf's base64: lines of 76 characters (the last 1 to 76), each ended by CRLF, strict
    alphabet and padding; anything else is :class:`NotStrict`.

    >>> decode_base64_lines(b"aGVsbG8=\\r\\n")
    b'hello'
    """
    if not body:
        return b""
    full = (len(body) - 2) // (_B64_WIDTH + 2)  # lines before the last one
    stride = _B64_WIDTH + 2
    if (body[-2:] != b"\r\n" or body[_B64_WIDTH:stride * full:stride] != b"\r" * full
            or body[_B64_WIDTH + 1:stride * full:stride] != b"\n" * full):
        raise NotStrict(f"part {what}: base64 not in lines of {_B64_WIDTH} characters")
    compact = _line_contents(body, full)
    if not compact:
        raise NotStrict(f"part {what}: a line break inside a base64 line")
    try:  # a CR or LF left inside a line is outside the alphabet: refused here
        return pybase64.b64decode(compact, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise NotStrict(f"part {what}: invalid base64 ({exc})") from None


_BLOCK_LINES = 64
_LINE_FORMAT = f"{_B64_WIDTH}s2x"  # a line's characters, then its CRLF skipped
_BLOCK = struct.Struct(_LINE_FORMAT * _BLOCK_LINES)


@lru_cache(maxsize=_BLOCK_LINES)
def _lines_struct(count: int) -> struct.Struct:
    return struct.Struct(_LINE_FORMAT * count)


def _line_contents(body: bytes | memoryview, full: int) -> bytes:
    """The characters of ``body`` without the two bytes that end each of its ``full`` lines
    of 76 characters (the caller checked they are CRLF) and its final CRLF.

    As ``body.translate(None, b"\\r\\n")`` on a body whose only CRs and LFs are those line
    ends, in a third of its time: struct cuts the lines out by position, 64 at a time; a CR
    or LF anywhere else is kept and refused by the alphabet check of the caller's decode."""
    view = memoryview(body)
    blocks, rest = divmod(full, _BLOCK_LINES)
    cut = blocks * _BLOCK.size
    return b"".join(chain(chain.from_iterable(_BLOCK.iter_unpack(view[:cut])),
                          _lines_struct(rest).unpack_from(view, cut),
                          (view[full * (_B64_WIDTH + 2):len(body) - 2],)))


def _children(data: bytes, body: Span, bounds: tuple[bytes, ...]) -> list[Span]:
    """The body parts between ``--boundary`` lines: no preamble, no epilogue, and no other
    line that starts like a delimiter of this part or of an enclosing one."""
    start, end = body
    delimiter = b"--" + bounds[0]
    opening, closing = delimiter + b"\r\n", b"\r\n" + delimiter + b"--\r\n"
    if not data.startswith(opening, start, end) or not data.endswith(closing, start, end):
        raise NotStrict("a multipart body with a preamble or an epilogue")
    inner_start = start + len(opening)
    inner_end = max(end - len(closing), inner_start)
    children = _split(data, inner_start, inner_end, b"\r\n" + opening)
    for child_start, child_end in children:
        for bound in bounds:
            if (data.startswith(b"--" + bound, child_start, child_end)
                    or data.find(b"\n--" + bound, child_start, child_end) != -1):
                raise NotStrict("a line that looks like a MIME delimiter")
    return children


def _split(data: bytes, start: int, end: int, separator: bytes) -> list[Span]:
    """The spans ``data[start:end].split(separator)`` would return."""
    spans: list[Span] = []
    while (hit := data.find(separator, start, end)) != -1:
        spans.append((start, hit))
        start = hit + len(separator)
    spans.append((start, end))
    return spans
