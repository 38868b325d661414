"""DKIM signing: dkimpy's rules and folding, the RSA done by ``cryptography`` (OpenSSL).

dkimpy's ``DKIM.sign`` costs about twice the RSA operation around it for an invoice message
(an object and a logger per message, the key's PEM parsed in pure Python, the whole message
split into lines with a regex and joined back, every header canonicalized through module-level
regexes); its own RSA is pure Python, about ten times slower than OpenSSL
(``bench/bench_delivery.py``). The signer here makes the same ``DKIM-Signature`` field, byte
for byte (rsa-sha256, relaxed/simple, no ``l=``, ``i=@domain``, the same tags in the same
order), with dkimpy 1.1's ``select_headers``, ``fold`` and ``RE_BTAG`` and its rules for the
rest, each step written out for speed only:
- the key is loaded once, and OpenSSL signs the header hash (PKCS#1 v1.5: deterministic);
- the message is cut at its first empty line instead of being split into lines and joined
  back; the header section is read as ``rfc822_parse`` reads it (a field name of printable
  ASCII and a colon, continuation lines appended) — any line it would not read so, or a bare
  LF, sends the whole message through ``rfc822_parse`` itself;
- the relaxed header canonicalization (unfold, runs of WSP to one space, strip) of the signed
  headers only, hashed in one call;
- the simple body canonicalization (trailing empty lines dropped, one CRLF at the end) hashed
  from a view of the message, without a copy of the body.
:meth:`DkimSigner.sign` checks for a bare LF (``rfc822_parse`` turns one into CRLF) and takes
dkimpy's parse of the whole message when there is one. :meth:`DkimSigner.sign_crlf` skips that
check (two passes over a 90 kB message, a tenth of a millisecond): it is for the messages
:func:`sealbill.mail.mime.build_message` writes (CRLF line ends only, by construction). A
message with a bare LF in its body that reached it anyway could carry a signature that does not
verify — and could not be sent: the guard reads every message back in the strict form
(:mod:`sealbill.mail.readback`), which refuses any bare CR or LF. The tests check that both give
dkimpy's own header byte for byte (built messages and generated ones) and that dkimpy verifies
every signature against the published key.

Invariants: the signature covers the headers that say who and what (:data:`SIGNED_HEADERS`,
``To`` included) and the whole body; it changes nothing in the message it is prepended to.
A resend after a crash is the same message (same bytes, same Message-ID) with a fresh
signature: only the ``t=`` signing time differs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

# Headers signed: the ones that say who, what and which message. "To" is signed so that a
# relay cannot add a recipient to the visible list without breaking the signature.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"auto-submitted")
_FIELD_NAME = b"DKIM-Signature"
_PADDING = padding.PKCS1v15()
_PREHASHED = utils.Prehashed(hashes.SHA256())
_FIELD_START = re.compile(rb"([\x21-\x7e]+?):")  # rfc822_parse's field name and colon
_WSP = re.compile(rb"[\t ]+")  # canonicalization's compress_whitespace
_DNS_NAME = re.compile(rb"[A-Za-z0-9.\-]+\Z")  # a domain or selector with no other byte
Headers = list[list[bytes]]


def _header_end(message: bytes) -> int | None:
    """Where the first empty line starts, for a message without a bare LF (``rfc822_parse``
    splits lines on ``\\r?\\n`` and joins the body back with CRLF: with no bare LF that gives
    the same bytes; a bare CR is no line end to it). None for any other message."""
    if message.count(b"\n") != message.count(b"\r\n"):
        return None
    return _crlf_header_end(message)


def _crlf_header_end(message: bytes) -> int | None:
    """Where the first empty line starts; None when the message has no header section or no
    empty line (``rfc822_parse`` then decides)."""
    if message.startswith(b"\r\n"):
        return None
    cut = message.find(b"\r\n\r\n")
    return None if cut < 0 else cut


def _simple_body_hash(data: bytes, start: int = 0) -> bytes:
    """base64 SHA-256 of the simple canonical form of the body ``data[start:]`` (dkimpy's
    ``strip_trailing_lines``: every CRLF at the end dropped, then one CRLF; an empty body is
    one CRLF), hashed from a view: no copy of the body."""
    end = len(data)
    while data.endswith(b"\r\n", start, end):
        end -= 2
    hasher = hashlib.sha256(memoryview(data)[start:end])
    hasher.update(b"\r\n")
    return base64.b64encode(hasher.digest())


def _crlf_fields(section: bytes) -> Headers | None:
    """dkimpy's ``rfc822_parse`` of a header section (its empty line excluded) — the same
    [name, value + CRLF] pairs, continuations appended to their field — for a section with no
    bare LF and only lines ``rfc822_parse`` reads as fields or continuations; None for any
    other section (``rfc822_parse`` then decides, and raises where it raises)."""
    if section.count(b"\n") != section.count(b"\r\n"):
        return None
    headers: Headers = []
    for line in section.split(b"\r\n")[:-1]:  # each line ends with CRLF (no empty one)
        if line[:1] in (b"\t", b" "):
            if not headers:
                return None
            headers[-1][1] += line + b"\r\n"
            continue
        found = _FIELD_START.match(line)
        if found is None:
            return None
        headers.append([found[1], line[found.end():] + b"\r\n"])
    return headers


def _without_b(value: bytes) -> bytes:
    """``RE_BTAG.sub(b"\\1", value)``: the ``b=`` tag's value removed."""
    return bytes(dkim.RE_BTAG.sub(lambda found: found[1], value))


def _relaxed(value: bytes) -> bytes:
    """dkimpy's relaxed header value (``Relaxed.canonicalize_headers``) for a value with no
    bare LF: unfolded, runs of WSP made one space, stripped; CRLF-terminated."""
    return _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip() + b"\r\n"


def _cut_at_b(value: bytes) -> bytes:
    """``_without_b(b" " + _without_b(value))`` for this signer's folded field with ``b=``
    and its 60 zeros last, and only tags of DNS names, digits, the ``h=`` list and base64 before
    it (:data:`_DNS_NAME`): there ``RE_BTAG`` (``[;\\s]b FWS =`` and the value's characters)
    matches only that last tag, and ``fold`` never breaks inside ``b=0…0`` (62 characters
    after a space, less than a line), so the field ends at its last ``b=``."""
    return b" " + value[:value.rindex(b"b=") + 2]


def _signed_block(headers: Headers, unsigned_value: bytes, cut_at_b: bool = False) -> bytes:
    """The bytes dkimpy's ``hash_headers`` feeds the header hash: the signed headers as
    ``select_headers`` picks them (from the bottom, once per name in ``h=``), relaxed, then
    this ``DKIM-Signature`` field with its ``b=`` value removed (``RE_BTAG``), relaxed and
    without its CRLF. The header values of ``headers`` and ``unsigned_value`` hold no bare
    LF (``_crlf_fields``; the folding writes CRLF). ``cut_at_b``: the field is this signer's
    with plain tags (see :func:`_cut_at_b`)."""
    selected = dkim.select_headers(headers, SIGNED_HEADERS)
    # RE_BTAG applied as dkimpy applies it: by gen_header, then again by hash_headers
    unsigned = (_cut_at_b(unsigned_value) if cut_at_b
                else _without_b(b" " + _without_b(unsigned_value)))
    return b"".join([*(name.lower().rstrip() + b":" + _relaxed(value)
                       for name, value in selected),
                     _FIELD_NAME.lower() + b":" + _relaxed(unsigned).rstrip()])


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_pem: bytes


class DkimSigner:
    """Signs serialized messages for one domain and selector.

    ``use_openssl=False`` keeps dkimpy's own ``sign`` and its pure-Python RSA (for the
    benchmark's comparison).
    """

    def __init__(self, key: DkimKey, *, use_openssl: bool = True) -> None:
        self.key = key
        self._use_openssl = use_openssl
        loaded = serialization.load_pem_private_key(key.private_pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("the DKIM key must be an RSA private key")
        self._rsa = loaded
        self._selector, self._domain = key.selector.encode(), key.domain.encode()
        # the b= tag is then cut by position, not by dkimpy's RE_BTAG (see _cut_at_b)
        self._plain_tags = bool(_DNS_NAME.match(self._selector)
                                and _DNS_NAME.match(self._domain))

    def signature_header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature: ...\\r\\n`` field to prepend to ``message`` (any message)."""
        if not self._use_openssl:
            signer = dkim.DKIM(message, linesep=b"\r\n")
            return bytes(signer.sign(self._selector, self._domain, self.key.private_pem,
                                     include_headers=list(SIGNED_HEADERS)))
        return self._header(message, _header_end(message))

    def sign(self, message: bytes) -> bytes:
        return self.signature_header(message) + message

    def sign_crlf(self, message: bytes) -> bytes:
        """:meth:`sign` for a message written with CRLF line ends only (see the module)."""
        if not self._use_openssl:
            return self.sign(message)
        return self._header(message, _crlf_header_end(message)) + message

    def _header(self, message: bytes, cut: int | None) -> bytes:
        headers = None if cut is None else _crlf_fields(message[:cut + 2])
        if cut is None or headers is None:
            # dkimpy's parse of the whole message (a bare LF becomes CRLF)
            headers, body = dkim.rfc822_parse(message)
            return self._signature(headers, body, 0)
        return self._signature(headers, message, cut + 4)

    def _signature(self, headers: Headers, data: bytes, body_at: int) -> bytes:
        # dkimpy 1.1's DKIM.sign and DKIM.gen_header for rsa-sha256, relaxed/simple, no l=,
        # i=@domain, step for step (see _signed_block); only the RSA call is OpenSSL's.
        fields = [
            (b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/simple"),
            (b"d", self._domain), (b"i", b"@" + self._domain), (b"q", b"dns/txt"),
            (b"s", self._selector), (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(SIGNED_HEADERS)), (b"bh", _simple_body_hash(data, body_at)),
            (b"b", b"0" * 60),
        ]
        value = dkim.fold(b"; ".join(b"=".join(x) for x in fields), namelen=len(_FIELD_NAME),
                          linesep=b"\r\n")
        digest = hashlib.sha256(_signed_block(headers, value, self._plain_tags)).digest()
        signature = self._rsa.sign(digest, _PADDING, _PREHASHED)
        fields[-1] = (b"b", base64.b64encode(signature))
        value = b"; ".join(b"=".join(x) for x in fields) + b"\r\n"
        return _FIELD_NAME + b": " + bytes(dkim.fold(value, namelen=len(_FIELD_NAME),
                                                       linesep=b"\r\n"))

    def dns_txt_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
        public = self._rsa.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def generate_key(path: Path, bits: int = 2048) -> bytes:
    """Write a new RSA key (PKCS#8 PEM, mode 0600) and return it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(pem)
    return pem
