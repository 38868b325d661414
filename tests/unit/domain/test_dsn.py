"""Reading RFC 3464 delivery status notifications (Postfix-style samples in tests/data/dsn)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.domain.dsn import Dsn, NotADsn, parse_dsn

SAMPLES = Path(__file__).parents[2] / "data" / "dsn"


def test_a_postfix_bounce_names_the_original_message_and_the_failed_recipient() -> None:
    dsn = parse_dsn((SAMPLES / "postfix_5xx_user_unknown.eml").read_bytes())
    assert dsn.message_id == "<inv-1.env-1@acme-cloud.example>"
    [rcpt] = dsn.recipients
    assert (rcpt.final_recipient, rcpt.original_recipient) == ("ap@client1.example",) * 2
    assert rcpt.permanent_failure and not rcpt.delayed and rcpt.reply_code == 550
    assert "User unknown in virtual mailbox table" in rcpt.diagnostic  # folded line joined


def test_a_delay_warning_is_not_a_permanent_failure() -> None:
    [rcpt] = parse_dsn((SAMPLES / "postfix_4xx_delayed.eml").read_bytes()).recipients
    assert rcpt.delayed and not rcpt.permanent_failure and rcpt.status == "4.2.2"


def test_the_message_id_is_read_from_a_returned_full_message() -> None:
    dsn = parse_dsn((SAMPLES / "postfix_full_message_returned.eml").read_bytes())
    assert dsn.message_id == "<inv-2.env-2@acme-cloud.example>"
    assert dsn.recipients[0].status == "5.2.1"


def test_an_auto_reply_is_not_a_dsn() -> None:
    with pytest.raises(NotADsn, match="not a delivery status notification"):
        parse_dsn((SAMPLES / "out_of_office.eml").read_bytes())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000) | st.sampled_from(sorted(SAMPLES.glob("*.eml"))).map(
    lambda p: p.read_bytes()).flatmap(
        lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])))
def test_any_bytes_are_a_dsn_or_not_a_dsn_never_another_error(data: bytes) -> None:
    with contextlib.suppress(NotADsn):
        assert isinstance(parse_dsn(data), Dsn)
