"""The send stage's cheaper builder, signer and dot-stuffing give the bytes they gave before.

- :func:`sealbill.mail.mime.build_message` gives, for a fixed set of inputs (plain and accented
  subjects, long ones, several time zones, parts of 0 bytes to several blocks of base64 lines),
  the very bytes c4296a3's builder gave (their SHA-256, computed with that commit);
- its pieces against what they replaced: the subject's encoded-words against the character-
  by-character cut, the ``Date`` header against ``format_datetime`` (equal instants in other
  offsets included); and ``base64_lines`` (c4296a3's; a faster-looking replacement was
  withdrawn) against the standard library's ``base64.encodebytes`` with CRLF;
- ``dot_stuff`` leaves a message in which no line starts with a dot as it is (the same
  object), and doubles the dots as smtplib does otherwise;
- the DKIM field cut at its ``b=`` tag by position is what dkimpy's ``RE_BTAG`` leaves, and
  the whole ``DKIM-Signature`` is dkimpy's own, for generated domains and selectors.
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.mail import mime
from sealbill.mail.dkim import (
    SIGNED_HEADERS,
    DkimKey,
    DkimSigner,
    _cut_at_b,
    _without_b,
    generate_key,
)
from sealbill.mail.smtp import dot_stuff
from sealbill.store.parties.records import Recipient

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40
SUBJECTS = [
    "Invoice F2026-000123",
    "Facture F2026-000123 \u2014 Acme Cloud SAS \u2014 1\u202f148,20\u00a0\u20ac",
    "Avoir n\u00b0 AV-2026-0001 corrigeant la facture n\u00b0 F2026-000123 \u2014 "
    "\u00c9tablissements L\u00e9on & Fils \u2014 12\u202f345,67\u00a0\u20ac",
    "\U0001F600" * 30 + "\u00e9" * 41,
]
DATES = [datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
         datetime(2026, 11, 1, 10, 30, tzinfo=timezone(timedelta(hours=1))),
         datetime(2026, 11, 1, 9, 30)]
SIZES = [0, 1, 56, 57, 58, 76, 57 * 64, 57 * 64 + 1, 57 * 64 * 3 - 1, 56000]
# sha256 of each case's message as c4296a3's build_message wrote it
C4296A3 = [
    "9f2f30ab7987c5418f1c41b944a24b76eb6e022d36672c0266f49585eea3819a",
    "3d2e091b406e4d0bd279537aab6438498e9f1e02c58251971f78351e9ddcb0cd",
    "e2b409e8ea0b2ca98194b2c5ebba53062ac582b18d66ceed42c7f83b9a82d8a4",
    "73d3efd1bca2da84514854346792a6e25a2e941af60adce790f3e61fa1c72378",
    "2b5e2bba189406619b592c623de71afe66f994542ab132e3b51cd93ec2f38434",
    "ba3b2b48e208b0e6c125b43d8c2be737323f2407601025ac0745002da95197d3",
    "84ae031be7213a821a9d53cb61236d680d4ce27dee444cfc6b7e9a77437eca0b",
    "6c0631e4f42b228069f71c862c563947eb80dbdcb4fa3a385c607f547279a1fe",
    "6d6b1680ac8db3160034c0e7e5bea03eb4a1372b3a7614431f89672fd9c20bb4",
    "c9008156b46897726303d505485cfc6b331758f2e793172600abc5cdc1787556",
    "38fe6204b780a27d14bb37e26293a10c326bd4f0d71d517a0453ae513a3a1f17",
    "a347eb4bbcd653ef43fce06fab0249645b1a133c1cfff2d6ab0585aad95e2ac1",
]


def _cases() -> list[dict[str, Any]]:
    out = []
    for i, subject in enumerate(SUBJECTS):
        for j, date in enumerate(DATES):
            size = SIZES[(i * 3 + j) % 10]
            body = (PDF * (size // len(PDF) + 1))[:size]
            out.append({
                "sender": mime.Sender("Acme Cloud SAS", "billing@acme-cloud.example"),
                "recipients": [Recipient(1, "billing1@client1.example"),
                               Recipient(2, "b@client.example")],
                "display_names": {1: "Ann Lee", 2: "\u00c9lodie, Br\u00fbl\u00e9"},
                "archive_email": "archive@acme-cloud.example",
                "message_id": f"<inv-{i}.env-{j}@acme-cloud.example>", "date": date,
                "content": mime.Content(subject, body[: size // 3] + b"\n.x\n",
                                        b"<p>" + body[: size // 2] + b"</p>\n", body,
                                        f"facture-F2026-{i}{j}.pdf")})
    return out


def test_the_messages_are_c4296a3s_bytes() -> None:
    digests = [hashlib.sha256(mime.build_message(**case).data).hexdigest()
               for case in _cases()]
    assert digests == C4296A3
    assert len(set(digests)) == len(digests)


def _stdlib_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 114, 57 * 63, 57 * 64 - 1, 57 * 64,
                                  57 * 64 + 1, 57 * 64 * 2, 57 * 64 * 2 + 56, 70_001])
def test_base64_lines_are_the_standard_librarys(size: int) -> None:
    data = (PDF * (size // len(PDF) + 1))[:size]
    assert mime.base64_lines(data) == _stdlib_lines(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=9000))
def test_base64_lines_of_any_bytes(data: bytes) -> None:
    assert mime.base64_lines(data) == _stdlib_lines(data)


def _subject_by_characters(value: str) -> bytes:
    """c4296a3's cut of a non-ASCII subject: characters added while they fit in 42 bytes."""
    words, chunk, size = [], list[bytes](), 0
    for char in value:
        raw = char.encode("utf-8")
        if size + len(raw) > 42:
            words.append(base64.b64encode(b"".join(chunk)).decode("ascii"))
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw)
    words.append(base64.b64encode(b"".join(chunk)).decode("ascii"))
    return ("Subject: " + "\r\n ".join(f"=?utf-8?b?{w}?=" for w in words) + "\r\n").encode()


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
               max_size=120).filter(lambda s: not s.isascii()))
def test_the_subjects_encoded_words_are_cut_as_before(subject: str) -> None:
    assert mime._text_header("Subject", subject) == _subject_by_characters(subject)


def test_the_date_header_follows_the_offset_not_only_the_instant() -> None:
    utc = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == paris  # equal instants: a cache keyed on the instant alone would mix them
    for date in (utc, paris, utc, datetime(2026, 11, 1, 9, 30), paris):
        assert mime._date_header(date) == f"Date: {format_datetime(date)}\r\n".encode()


def test_a_message_without_a_dot_at_a_line_start_is_not_copied() -> None:
    built = mime.build_message(**_cases()[1]).data
    assert b"." in built
    assert dot_stuff(built) is built
    assert dot_stuff(built) == smtplib._quote_periods(built)  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"x" * 40, b"a.b", b"\n.", b"\r\n.."]),
                max_size=40).map(b"".join))
def test_dot_stuffing_is_still_smtplibs(data: bytes) -> None:
    assert dot_stuff(data) == smtplib._quote_periods(data)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return generate_key(Path(tmp_path_factory.mktemp("dkim")) / "k.pem")


label = st.text("abcdefghijklmnopqrstuvwxyzB0123456789-", min_size=1, max_size=63)
names = st.lists(label, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, deadline=None)
@given(domain=names, selector=names, t=st.integers(0, 10**12),
       bh=st.binary(min_size=32, max_size=32))
def test_the_b_tag_cut_by_position_is_re_btags(domain: str, selector: str, t: int,
                                               bh: bytes) -> None:
    tags = (f"v=1; a=rsa-sha256; c=relaxed/simple; d={domain}; i=@{domain}; q=dns/txt; "
            f"s={selector}; t={t}; h=").encode() + b" : ".join(SIGNED_HEADERS) + (
        b"; bh=" + base64.b64encode(bh) + b"; b=" + b"0" * 60)
    folded = dkim.fold(tags, namelen=len(b"DKIM-Signature"), linesep=b"\r\n")
    assert _cut_at_b(folded) == _without_b(b" " + _without_b(folded))


@settings(max_examples=25, deadline=None)
@given(domain=names, selector=names)
def test_the_signature_is_dkimpys_for_any_dns_names(pem: bytes, domain: str,
                                                    selector: str) -> None:
    key = DkimKey(selector, domain, pem)
    message = mime.build_message(**_cases()[5]).data
    now = time.time()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: now)
        mine = DkimSigner(key).sign_crlf(message)
        theirs = bytes(dkim.DKIM(message, linesep=b"\r\n").sign(
            selector.encode(), domain.encode(), pem, include_headers=list(SIGNED_HEADERS)))
    assert mine == theirs + message
    record = DkimSigner(key).dns_txt_record().encode()
    assert dkim.verify(mine, dnsfunc=lambda name, timeout=5: record)
