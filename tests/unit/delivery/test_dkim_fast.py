"""The DKIM signer's shortcuts give dkimpy's own signature, byte for byte.

The fast path (key loaded once, OpenSSL RSA, the body cut at the first empty line of a CRLF
message, the body hashed without a copy) must produce exactly the ``DKIM-Signature`` header that
dkimpy's own ``sign`` produces for the same message at the same second — RSA PKCS#1 v1.5
signatures are deterministic — and every signature verifies with dkimpy against the published
key. ``sign_crlf`` (no bare-LF check) is held to the same on the builder's messages, and a
message it could sign wrongly is one the guard's strict read-back refuses.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.domain.message_facts import NOT_STRICT
from sealbill.mail import mime
from sealbill.mail.dkim import SIGNED_HEADERS, DkimKey, DkimSigner, _header_end, generate_key
from sealbill.mail.readback import parse_message
from sealbill.store.parties.records import Recipient


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DkimKey:
    pem = generate_key(Path(tmp_path_factory.mktemp("dkim")) / "k.pem")
    return DkimKey("sel", "acme-cloud.example", pem)


def _message(body: bytes = b"x" * 5000, subject: str = "Facture F-1 \u2014 1,00 \u20ac") -> bytes:
    return mime.build_message(
        sender=mime.Sender("Acme", "billing@acme-cloud.example"),
        recipients=[Recipient(1, "a@client.example"), Recipient(2, "b@client.example")],
        display_names={1: "Ann", 2: "\u00c9lodie, Br\u00fbl\u00e9"}, archive_email=None,
        message_id="<inv-1.env-1@acme-cloud.example>", date=datetime(2026, 11, 1, tzinfo=UTC),
        content=mime.Content(subject, body, body, body + b"\r\n\r\n", "f.pdf")).data


def _dkimpy_header(key: DkimKey, message: bytes) -> bytes:
    return bytes(dkim.DKIM(message, linesep=b"\r\n").sign(
        key.selector.encode(), key.domain.encode(), key.private_pem,
        include_headers=list(SIGNED_HEADERS)))


def _same_second(fast: DkimSigner, key: DkimKey, message: bytes,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    return fast.signature_header(message), _dkimpy_header(key, message)


def _verifies(key: DkimKey, signed: bytes) -> bool:
    record = DkimSigner(key).dns_txt_record().encode()
    return bool(dkim.verify(signed, dnsfunc=lambda name, timeout=5: record))


def test_the_header_is_dkimpys_own(key: DkimKey, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = DkimSigner(key)
    for message in (_message(), _message(b""), _message(b"a\r\n" * 3000)):
        mine, theirs = _same_second(fast, key, message, monkeypatch)
        assert mine == theirs
        assert _verifies(key, mine + message)


def test_sign_crlf_is_dkimpys_own_on_built_messages(
        key: DkimKey, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = DkimSigner(key)
    bodies = (b"x" * 5000, b"", b"a\r\n" * 3000, bytes(range(256)) * 300)
    for message in [_message(body) for body in bodies] + [_message(subject="Invoice 1")]:
        now = time.time()
        monkeypatch.setattr(time, "time", lambda now=now: now)
        signed = fast.sign_crlf(message)
        assert signed == _dkimpy_header(key, message) + message
        assert _verifies(key, signed)


@pytest.mark.parametrize("body", [b"", b"\r\n", b"\r\n\r\n", b"a", b"a\r\n", b"a\r\n\r\n\r\n",
                                  b"a\r\r\n", b"\r\n\r\na\r\n\r\n", b"a\r"])
def test_the_body_hash_is_dkimpys(key: DkimKey, body: bytes,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    message = b"From: a@b.example\r\nTo: c@d.example\r\n\r\n" + body
    mine, theirs = _same_second(DkimSigner(key), key, message, monkeypatch)
    assert mine == theirs
    assert DkimSigner(key).sign_crlf(message) == mine + message


def test_a_bare_line_feed_that_reaches_sign_crlf_cannot_be_sent(key: DkimKey) -> None:
    # sign_crlf trusts the builder's CRLF; a message that broke that promise is outside the
    # strict form, and the guard refuses any message whose read-back carries a defect.
    built = _message()
    cut = built.index(b"\r\n\r\n")
    for broken in (built[:cut] + b"\nX-Extra: y" + built[cut:],
                   built[:-40] + b"\n" + built[-40:]):
        parsed = parse_message(DkimSigner(key).sign_crlf(broken))
        assert parsed.defects and parsed.defects[0].startswith(NOT_STRICT)


def test_a_message_with_a_bare_line_feed_takes_dkimpys_path(
        key: DkimKey, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = DkimSigner(key)
    for message in (b"From: a@b.example\nTo: c@d.example\n\nbody\n",
                    b"From: a@b.example\r\nTo: c@d.example\r\n\r\nbo\ndy\r\n",
                    b"From: a@b.example\r\nSubject: x\r\n"):
        assert _header_end(message) is None
        mine, theirs = _same_second(fast, key, message, monkeypatch)
        assert mine == theirs
    bare_cr = b"From: a@b.example\r\nSubject: x\r\n\r\nbo\rdy\r\n\r\n\r\n"
    assert _header_end(bare_cr) is not None  # a bare CR ends no line for rfc822_parse
    mine, theirs = _same_second(fast, key, bare_cr, monkeypatch)
    assert mine == theirs


lines = st.lists(st.binary(max_size=30).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=8)


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.sampled_from([b"From: a@b.example", b"To: c@d.example",
                                         b"Subject: x", b" folded", b"\tfolded",
                                         b"X-Other: y"]), min_size=1, max_size=6),
       body=lines, sep=st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_the_cut_is_where_rfc822_parse_cuts(headers: list[bytes], body: list[bytes],
                                            sep: bytes) -> None:
    if headers[0][:1] in (b" ", b"\t"):
        headers = [b"From: a@b.example", *headers]
    message = b"\r\n".join(headers) + b"\r\n\r\n" + sep.join(body)
    cut = _header_end(message)
    parsed_headers, parsed_body = dkim.rfc822_parse(message)
    if sep != b"\n" or len(body) <= 1:
        assert cut is not None  # a message without a bare LF takes the fast cut
    if cut is None:
        return
    assert dkim.rfc822_parse(message[:cut + 2])[0] == parsed_headers
    assert message[cut + 4:] == parsed_body


value_text = st.binary(max_size=12).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
field = st.tuples(
    st.sampled_from([b"From", b"to", b"SUBJECT", b"Date", b"Message-ID", b"X-Other",
                     b"Content-Type", b"mime-version", b"Auto-Submitted", b"Cc"]),
    st.lists(st.tuples(st.sampled_from([b" ", b"\t", b"  \t"]), value_text),
             min_size=1, max_size=3))


@settings(max_examples=120, deadline=None)
@given(fields=st.lists(field, min_size=1, max_size=9),
       body=st.lists(value_text, max_size=5), trailing=st.integers(0, 3))
def test_any_crlf_message_is_signed_as_dkimpy_signs_it(
        key: DkimKey, fields: list[tuple[bytes, list[tuple[bytes, bytes]]]], body: list[bytes],
        trailing: int) -> None:
    # header fields of any values, folded or not, repeated or absent; any body
    lines = [name + b":" + b"\r\n".join(space + text for space, text in pieces)
             for name, pieces in fields]
    message = (b"\r\n".join(lines) + b"\r\n\r\n" + b"\r\n".join(body)
               + b"\r\n" * trailing)
    fast = DkimSigner(key)
    with pytest.MonkeyPatch.context() as patch:
        mine, theirs = _same_second(fast, key, message, patch)
        assert fast.sign_crlf(message) == mine + message
    assert mine == theirs


def test_the_pure_dkimpy_signer_still_works(key: DkimKey) -> None:
    message = _message()
    signed = DkimSigner(key, use_openssl=False).sign(message)
    assert _verifies(key, signed)
    assert _verifies(key, DkimSigner(key).sign(message))
