"""SmtpSender with and without PIPELINING (RFC 2920), against real aiosmtpd servers on loopback.

Both paths deliver the very bytes given (dot-stuffing undone by the server), deliver a message
to the recipients the server accepted and report the refused ones per recipient, send nothing
when no recipient is accepted or a refusal names the client (a session fault), report a refused
MAIL FROM as a session fault, keep the connection in step after a refusal, and reopen once a
connection the server closed while idle.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.mail.config import SmtpConfig
from sealbill.mail.sink import start_sink
from sealbill.mail.smtp import Outcome, SmtpSender, dot_stuff, quote_address


class _Server:
    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse_rcpt: set[str] = set()
        self.rcpt_replies: dict[str, str] = {}
        self.refuse_mail = False
        self.hang_up = False
        self.commands: list[str] = []

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append("MAIL")
        if self.hang_up:
            self.hang_up = False
            server.transport.close()
            return "421 closing"
        if self.refuse_mail:
            return "550 5.7.1 sender refused"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append("RCPT")
        if address in self.refuse_rcpt:
            return "550 5.1.1 no such user"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.commands.append("DATA")
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              bytes(envelope.original_content)))
        return "250 OK: queued"


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[_Server, SmtpSender]]:
    handler = _Server(pipelining=request.param)
    controller = start_sink(handler)
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=int(controller.port), timeout=5))
    try:
        yield handler, sender
    finally:
        sender.close()
        controller.stop()


MESSAGE = (b"From: a@seller.example\r\nTo: b@client.example\r\nSubject: x\r\n\r\n"
           b".starts with a dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast line no crlf")


def test_the_exact_bytes_arrive_to_all_recipients(server: tuple[_Server, SmtpSender]) -> None:
    handler, sender = server
    rcpts = ("b@client.example", "c@client.example", "archive@seller.example")
    for _ in range(3):  # one connection, reused
        result = sender.send("a@seller.example", rcpts, MESSAGE)
        assert result.outcome is Outcome.SENT, result
    assert [r[1] for r in handler.received] == [list(rcpts)] * 3
    assert all(r[2] == MESSAGE + b"\r\n" for r in handler.received)


def test_a_message_goes_to_the_recipients_accepted_and_names_the_refused_one(
        server: tuple[_Server, SmtpSender]) -> None:
    handler, sender = server
    handler.refuse_rcpt = {"c@client.example"}
    result = sender.send("a@seller.example", ("b@client.example", "c@client.example"), MESSAGE)
    assert result.outcome is Outcome.SENT
    assert result.accepted == ("b@client.example",)
    assert result.refused == {"c@client.example": (550, "5.1.1 no such user")}
    assert [r[1] for r in handler.received] == [["b@client.example"]]
    handler.refuse_rcpt = set()
    assert sender.send("a@seller.example", ("c@client.example",), MESSAGE).outcome is (
        Outcome.SENT)  # the connection is still in step
    assert len(handler.received) == 2


def test_a_temporary_refusal_of_one_recipient_is_reported_for_it_alone(
        server: tuple[_Server, SmtpSender]) -> None:
    handler, sender = server
    handler.rcpt_replies = {"c@client.example": "450 4.2.1 mailbox busy"}
    result = sender.send("a@seller.example", ("b@client.example", "c@client.example"), MESSAGE)
    assert result.outcome is Outcome.SENT and result.accepted == ("b@client.example",)
    assert result.refused == {"c@client.example": (450, "4.2.1 mailbox busy")}


@pytest.mark.parametrize("reply", [
    "554 5.7.1 <client.example[127.0.0.1]>: Client host rejected: Access denied",
    "530 5.7.0 Must issue a STARTTLS command first",
    "554 5.7.1 <c@client.example>: Relay access denied",
    "450 4.7.1 Client host rejected: cannot find your hostname",
])
def test_a_refusal_naming_the_client_is_a_session_fault_and_sends_nothing(
        server: tuple[_Server, SmtpSender], reply: str) -> None:
    handler, sender = server
    handler.rcpt_replies = {"c@client.example": reply}
    result = sender.send("a@seller.example", ("b@client.example", "c@client.example"), MESSAGE)
    assert result.outcome is Outcome.SESSION and reply[4:] in result.detail
    assert result.refused == {} and handler.received == []
    handler.rcpt_replies = {}
    assert sender.send("a@seller.example", ("b@client.example",), MESSAGE).outcome is (
        Outcome.SENT)
    assert len(handler.received) == 1


def test_every_recipient_refused_sends_nothing_and_keeps_the_connection(
        server: tuple[_Server, SmtpSender]) -> None:
    """With PIPELINING the DATA sent along is refused too (no recipient): RSET, same
    connection; nothing is delivered, and each refusal is reported for its recipient."""
    handler, sender = server
    handler.refuse_rcpt = {"b@client.example", "c@client.example"}
    result = sender.send("a@seller.example", ("b@client.example", "c@client.example"), MESSAGE)
    assert result.outcome is Outcome.PERMANENT and handler.received == []
    assert set(result.refused) == {"b@client.example", "c@client.example"}
    kept = sender._conn
    handler.refuse_rcpt = set()
    assert sender.send("a@seller.example", ("b@client.example",), MESSAGE).outcome is (
        Outcome.SENT)
    assert sender._conn is kept and len(handler.received) == 1


def test_a_refused_sender_sends_nothing(server: tuple[_Server, SmtpSender]) -> None:
    handler, sender = server
    handler.refuse_mail = True
    result = sender.send("a@seller.example", ("b@client.example",), MESSAGE)
    assert result.outcome is Outcome.SESSION and result.detail.startswith("MAIL FROM")
    assert handler.received == []
    handler.refuse_mail = False
    assert sender.send("a@seller.example", ("b@client.example",), MESSAGE).outcome is (
        Outcome.SENT)


def test_a_connection_closed_while_idle_is_reopened_once(
        server: tuple[_Server, SmtpSender]) -> None:
    handler, sender = server
    assert sender.send("a@seller.example", ("b@client.example",), MESSAGE).outcome is (
        Outcome.SENT)
    handler.hang_up = True  # the server hangs up at the next MAIL FROM, before any DATA
    assert sender.send("a@seller.example", ("b@client.example",), MESSAGE).outcome is (
        Outcome.SENT)
    assert len(handler.received) == 2


def test_a_line_break_in_an_address_never_reaches_the_wire(
        server: tuple[_Server, SmtpSender]) -> None:
    """smtplib's ``quoteaddr`` keeps the address part only: no second command is injected (the
    guard refuses such a message long before: SMTP recipients must equal the headers')."""
    handler, sender = server
    sender.send("a@seller.example", ("b@client.example\r\nRCPT TO:<eve@evil.example>",),
                MESSAGE)
    assert handler.commands.count("RCPT") == 1
    assert [r[1] for r in handler.received] == [["b@client.example"]]


@given(st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"\r", b"x", b"..", b"\r\n."]),
                max_size=30).map(b"".join))
def test_dot_stuffing_is_smtplibs(data: bytes) -> None:
    assert dot_stuff(data) == smtplib._quote_periods(data)  # type: ignore[attr-defined]


@given(address=st.text(st.sampled_from("ab.-+_@<> \"(),;:\u00e9x1!#=?`{|}~'/$%&*^[]\\"),
                      max_size=24))
def test_quote_address_is_quoteaddr(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address)


def test_quote_address_takes_plain_addresses_directly() -> None:
    for plain in ("a@b.example", "first.last+tag@sub.b-c.example", "o'hara@x.example"):
        assert quote_address(plain) == smtplib.quoteaddr(plain) == f"<{plain}>"
