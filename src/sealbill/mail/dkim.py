"""DKIM signing with dkimpy, the RSA operation done by ``cryptography`` (OpenSSL).

dkimpy canonicalizes, selects and hashes the headers and the body, and builds the
``DKIM-Signature`` field; its own RSA is pure Python (big-integer ``pow``), about ten times
slower than OpenSSL here (see ``bench/bench_delivery.py``). :class:`_OpenSslDKIM` replaces
three steps of dkimpy 1.1's signing path, each for speed only:
- the RSA signature over the header hash is computed by OpenSSL with the key loaded once;
- ``sign`` is dkimpy's ``DKIM.sign`` for rsa-sha256 without its per-message parse of the PEM
  key (pure-Python ASN.1, a third of a millisecond) — the same fields in the same order;
- a message without a bare LF (sealbill writes CRLF only) is cut at its first empty line
  instead of being split into lines with a regex and joined back (dkimpy's ``rfc822_parse``,
  the costliest step for a 60 kB invoice): the header section still goes through
  ``rfc822_parse``, and the body is the same bytes. Any other message takes dkimpy's path.
Everything else — header canonicalization, the fields, their folding, the ``b=`` placement —
is dkimpy's own code; the tests check that the header is byte for byte the one dkimpy's own
``sign`` makes (RSA PKCS#1 v1.5 is deterministic) and verify every signature with dkimpy.

Invariants: the signature covers the headers that say who and what (:data:`SIGNED_HEADERS`,
``To`` included) and the whole body; it changes nothing in the message it is prepended to.
A resend after a crash is the same message (same bytes, same Message-ID) with a fresh
signature: only the ``t=`` signing time differs.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

# Headers signed: the ones that say who, what and which message. "To" is signed so that a
# relay cannot add a recipient to the visible list without breaking the signature.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"auto-submitted")


class _OpenSslDKIM(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's DKIM with the RSA signature computed by OpenSSL through ``cryptography``."""

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, linesep=b"\r\n")
        self._openssl_key = key

    def set_message(self, message: bytes | None) -> None:
        cut = _header_end(message) if message else None
        if message is None or cut is None:
            super().set_message(message)
            return
        super().set_message(message[:cut + 2])  # the header section and the empty line
        self.body = message[cut + 4:]

    def sign_rsa_sha256(self, selector: bytes, domain: bytes,
                        include_headers: tuple[bytes, ...]) -> bytes:
        # dkimpy 1.1 DKIM.sign, rsa-sha256, relaxed/simple, no l=, i=@domain — minus the key
        # parsing: the key is already loaded (``gen_header`` below does the RSA step).
        if self.signature_algorithm != b"rsa-sha256":
            raise dkim.ParameterError("only rsa-sha256 DKIM signatures are produced here")
        canon_policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/simple")
        include_headers = tuple(x.lower() for x in include_headers)
        self.include_headers = include_headers
        if b"from" not in include_headers:
            raise dkim.ParameterError("The From header field MUST be signed")
        for x in set(include_headers).intersection(self.should_not_sign):
            raise dkim.ParameterError(f"The {x!r} header field SHOULD NOT be signed")
        body = canon_policy.canonicalize_body(self.body)
        self.hasher = dkim.HASH_ALGORITHMS[self.signature_algorithm]
        bodyhash = base64.b64encode(self.hasher(body).digest())
        sigfields = [
            (b"v", b"1"), (b"a", self.signature_algorithm), (b"c", canon_policy.to_c_value()),
            (b"d", domain), (b"i", b"@" + domain), (b"q", b"dns/txt"), (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")), (b"h", b" : ".join(include_headers)),
            (b"bh", bodyhash), (b"b", b"0" * 60),
        ]
        res = self.gen_header(sigfields, include_headers, canon_policy, b"DKIM-Signature", None)
        self.domain, self.selector, self.signature_fields = domain, selector, dict(sigfields)
        return b"DKIM-Signature: " + res

    def gen_header(self, fields: Any, include_headers: Any, canon_policy: Any,
                   header_name: bytes, pk: Any, standardize: bool = False) -> bytes:
        # Same steps as dkim.DKIM.gen_header (dkimpy 1.1), except the RSA call.
        if self.signature_algorithm != b"rsa-sha256" or standardize:
            raise dkim.ParameterError("only rsa-sha256 DKIM signatures are produced here")
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = dkim.HashThrough(self.hasher(), self.debug_content)
        sig = dict(fields)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(h, canon_policy, headers, include_headers,
                                                header, sig)
        signature = self._openssl_key.sign(h.digest(), padding.PKCS1v15(),
                                           utils.Prehashed(hashes.SHA256()))
        idx = next(i for i in range(len(fields)) if fields[i][0] == b"b")
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return bytes(dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep))


def _header_end(message: bytes) -> int | None:
    """Where the first empty line starts, for a message without a bare LF (``rfc822_parse``
    splits lines on ``\\r?\\n`` and joins the body back with CRLF: with no bare LF that gives
    the same bytes; a bare CR is no line end to it). None for any other message."""
    if message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
        return None
    cut = message.find(b"\r\n\r\n")
    return None if cut < 0 else cut


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_pem: bytes


class DkimSigner:
    """Signs serialized messages for one domain and selector.

    ``use_openssl=False`` keeps dkimpy's pure-Python RSA (for the benchmark's comparison).
    """

    def __init__(self, key: DkimKey, *, use_openssl: bool = True) -> None:
        self.key = key
        self._use_openssl = use_openssl
        loaded = serialization.load_pem_private_key(key.private_pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("the DKIM key must be an RSA private key")
        self._rsa = loaded
        self._selector, self._domain = key.selector.encode(), key.domain.encode()

    def signature_header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature: ...\\r\\n`` field to prepend to ``message``."""
        if self._use_openssl:
            return _OpenSslDKIM(message, self._rsa).sign_rsa_sha256(
                self._selector, self._domain, SIGNED_HEADERS)
        signer = dkim.DKIM(message, linesep=b"\r\n")
        return bytes(signer.sign(self._selector, self._domain, self.key.private_pem,
                                 include_headers=list(SIGNED_HEADERS)))

    def sign(self, message: bytes) -> bytes:
        return self.signature_header(message) + message

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
