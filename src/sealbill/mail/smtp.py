"""Send serialized messages over SMTP, one connection reused for a whole run.

Each :meth:`SmtpSender.send` is ``MAIL FROM`` / ``RCPT TO`` x n / ``DATA`` and answers a
:class:`SendResult` whose ``outcome`` is:

- ``sent`` — the server answered 250 to DATA: it has taken responsibility for the message for
  the recipients in ``accepted``; ``refused`` lists, per recipient, those it refused at
  ``RCPT`` (5xx: a bounce of that address; 4xx: that address, later);
- ``temporary`` — nobody took it for now: 4xx to DATA, a dropped connection or a timeout, or
  every recipient refused with at least one 4xx. After a drop or a timeout *during DATA* the
  server may in fact have the message; the retry reuses the same Message-ID, so the receiving
  side sees the same message twice at worst, never a different one;
- ``permanent`` — nobody took it and never will as it is: every recipient refused with a 5xx
  (each a bounce), or a 5xx to DATA (the message itself refused: no address is to blame);
- ``session`` — the *session* was refused, not a recipient: the connection, TLS, EHLO or AUTH
  failed, ``MAIL FROM`` was refused, or a refusal names the client rather than the recipient
  (``554 Client host rejected``, ``530 Must issue a STARTTLS command first``, ``Relay access
  denied``; :mod:`sealbill.domain.smtp_replies`). No content was sent; the caller pauses the
  run as a configuration problem and charges the message nothing.

Design (changed deliberately): a message accepted for *some* recipients is delivered to them.
When at least one ``RCPT`` is accepted and none names the client, the content is sent; the
server delivers it to the accepted recipients only, and the caller records the outcome per
recipient (:mod:`sealbill.domain.recipient_outcomes`) — a later attempt goes only to the
recipients not yet delivered, with the same bytes and Message-ID, so nobody receives it twice.
(Before, one refused recipient aborted the whole message, and a single bad address left the
invoice undelivered to everyone else.) Still: when *no* recipient is accepted, or one refusal
names the client, the content is never sent — the transaction is reset, or, when a pipelined
DATA was already accepted, the connection is closed before the final dot, which aborts it; a
connection found dead before the content was sent is reopened once (no message can have been
delivered without it), never after.

Speed: when the server offers PIPELINING (RFC 2920), ``MAIL FROM``, the ``RCPT TO`` commands and
``DATA`` go out in one write and their replies are read in order — the content is still only
sent after every reply has been read and judged (one round trip fewer than DATA on its own).
DATA's dot-stuffing is smtplib's (``(?m)^\\.`` doubled) done with ``bytes.replace``
(:func:`dot_stuff`), several times faster on a 60 kB message, and skipped (no copy) when no
line starts with a dot — a built message has none. The socket has ``TCP_NODELAY``
set (see :func:`no_delay`): without it TLS costs a message ~48 ms of waiting.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from enum import StrEnum

from sealbill.domain.smtp_replies import names_client, rcpt_verdict
from sealbill.mail.config import SmtpConfig


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    SESSION = "session"


@dataclass(frozen=True)
class SendResult:
    """What the server said. ``accepted``: the recipients taken at ``RCPT`` (the outcome of
    DATA applies to them; empty from a transport that does not say: then all of them);
    ``refused``: per recipient, its ``RCPT`` refusal (code, reply)."""

    outcome: Outcome
    code: int | None
    detail: str
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    accepted: tuple[str, ...] = ()


class SessionError(Exception):
    """The SMTP session could not be opened (connection, TLS, EHLO or AUTH refused)."""

    def __init__(self, code: int | None, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def classify(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    return Outcome.PERMANENT if code >= 500 else Outcome.TEMPORARY


def _judge_message(code: int, text: str) -> Outcome:
    """A reply about the message as a whole (DATA): the session's problem when it names the
    client (``554 5.7.1 Client host rejected`` at DATA), else by its code."""
    if not 200 <= code < 300 and names_client(code, text):
        return Outcome.SESSION
    return classify(code)


def no_delay(sock: socket.socket) -> socket.socket:
    """``sock`` with Nagle's algorithm off (``TCP_NODELAY``).

    Why: over TLS each SMTP command and each reply is a small record, and a pipelined
    ``MAIL``/``RCPT``/``DATA`` or the end of a message leaves the client with a small segment
    to send while the previous one is unacknowledged. Nagle holds it back until the ACK
    arrives, and the server delays that ACK (up to 40 ms on Linux) waiting for data to
    piggyback it on: ~48 ms a message. Through Postfix on loopback this made STARTTLS and
    SMTPS 9× slower than plain text (~20 messages/s against ~175; issue 16). sealbill writes
    whole commands and whole messages at once, so sending small segments at once costs
    nothing.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Smtp(smtplib.SMTP):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return no_delay(super()._get_socket(host, port, timeout))  # type: ignore[misc]


class _SmtpSsl(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return no_delay(super()._get_socket(host, port, timeout))  # type: ignore[misc]


class SmtpSender:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._conn: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.config.ca_file:
            context.load_verify_locations(self.config.ca_file)
        return context

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        conn: smtplib.SMTP
        if cfg.security == "ssl":
            conn = _SmtpSsl(cfg.host, cfg.port, timeout=cfg.timeout,
                            context=self._tls_context())
        else:
            conn = _Smtp(cfg.host, cfg.port, timeout=cfg.timeout)
        conn.ehlo()
        if cfg.security == "starttls":
            conn.starttls(context=self._tls_context())
            conn.ehlo()
        if cfg.user and cfg.password:
            conn.login(cfg.user, cfg.password)
        return conn

    def _open(self) -> smtplib.SMTP:
        """A session, or :class:`SessionError`: whatever refused it (connection, TLS, login)
        is about the configuration or the server, not about the message being sent."""
        try:
            return self._connect()
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            code = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else None
            raise SessionError(code, f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            # The connection is being discarded either way; a failed QUIT changes nothing.
            conn.close()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _envelope(self, mail_from: str, rcpt_to: tuple[str, ...]) -> _Replies:
        """The replies to MAIL FROM, to each RCPT TO (none when MAIL FROM was refused) and,
        when DATA went out with them (PIPELINING), to DATA."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._open()
            conn = self._conn
            try:
                if not conn.has_extn("pipelining"):
                    mail = conn.mail(mail_from)
                    rcpts = [conn.rcpt(r) for r in rcpt_to] if mail[0] == 250 else []
                    return _Replies(mail, rcpts, None)
                commands = [f"mail FROM:{quote_address(mail_from)}",
                            *(f"rcpt TO:{quote_address(r)}" for r in rcpt_to), "data"]
                if any("\r" in c or "\n" in c for c in commands):
                    raise ValueError(f"a line break in an SMTP command: {commands!r}")
                conn.send("".join(f"{c}\r\n" for c in commands))
                mail = conn.getreply()
                replies = [conn.getreply() for _ in rcpt_to]  # read all: stay in step
                data = conn.getreply()
                return _Replies(mail, replies if mail[0] == 250 else [], data)
            except smtplib.SMTPServerDisconnected:
                # Closed by the server (idle, or before answering): no message content was
                # sent, so nothing can have been delivered; reopen once.
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        try:
            return self._send(mail_from, rcpt_to, data)
        except SessionError as exc:
            # A 535 at login, a refused connection, a TLS failure: the configuration's or the
            # relay's problem — never the message's, never a recipient's.
            self._drop()
            return SendResult(Outcome.SESSION, exc.code,
                              f"no SMTP session (connection, TLS or login): {exc.detail}")
        except smtplib.SMTPResponseException as exc:
            self._drop()
            code, text = exc.smtp_code, _text(exc.smtp_error)
            return SendResult(_judge_message(code, text), code, text, accepted=rcpt_to)
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnects, timeouts (socket.timeout is an OSError) during the transaction.
            self._drop()
            return SendResult(Outcome.TEMPORARY, None, f"{type(exc).__name__}: {exc}",
                              accepted=rcpt_to)

    def _send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        replies = self._envelope(mail_from, rcpt_to)
        conn = self._conn
        assert conn is not None
        code, resp = replies.mail
        if code != 250:  # a refused sender is the configuration's problem, whatever the code
            self._end_transaction(conn, replies.data)
            return SendResult(Outcome.SESSION, code, "MAIL FROM refused: " + _text(resp))
        refused: dict[str, tuple[int, str]] = {}
        accepted: list[str] = []
        for rcpt, (rcode, rresp) in zip(rcpt_to, replies.rcpts, strict=True):
            verdict = rcpt_verdict(rcode, _text(rresp))
            if verdict == "session":
                self._end_transaction(conn, replies.data)
                return SendResult(Outcome.SESSION, rcode,
                                  f"RCPT TO {rcpt} refused naming the client: {_text(rresp)}")
            if verdict == "accepted":
                accepted.append(rcpt)
            else:
                refused[rcpt] = (rcode, _text(rresp))
        if not accepted:
            self._end_transaction(conn, replies.data)
            worst = min(c for c, _ in refused.values())  # a 4xx leaves hope: temporary
            return SendResult(classify(worst), worst, "every recipient refused", refused)
        dresp: bytes | str
        try:
            dcode, dresp = _data(conn, data, replies.data)
        except smtplib.SMTPResponseException as exc:  # DATA itself refused
            self._drop()
            dcode, dresp = exc.smtp_code, exc.smtp_error
        except (smtplib.SMTPException, OSError) as exc:
            # dropped or timed out during DATA: the refusals already read still hold
            self._drop()
            return SendResult(Outcome.TEMPORARY, None, f"{type(exc).__name__}: {exc}",
                              refused, tuple(accepted))
        text = _text(dresp)
        return SendResult(_judge_message(dcode, text), dcode, text, refused, tuple(accepted))

    def _end_transaction(self, conn: smtplib.SMTP, data_reply: tuple[int, bytes] | None
                         ) -> None:
        """Leave a refused transaction with nothing delivered. After a pipelined DATA that the
        server accepted (354: some recipients were), the connection is closed without the
        final dot, which aborts the transaction (RFC 5321 4.1.1.4: no dot, no message); the
        next message opens a new connection. Otherwise RSET."""
        if data_reply is not None and data_reply[0] == 354:
            self._drop()
        else:
            conn.rset()


@dataclass(frozen=True)
class _Replies:
    mail: tuple[int, bytes]
    rcpts: list[tuple[int, bytes]]
    data: tuple[int, bytes] | None  # when DATA was pipelined with them


# local@domain with dot-atom text on both sides: what parseaddr returns unchanged.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\Z")


def quote_address(address: str) -> str:
    """``smtplib.quoteaddr``: ``<address>``. A plain ``local@domain`` is wrapped directly;
    anything else goes through ``quoteaddr`` (``email.utils.parseaddr``, 30-40 µs a call)."""
    if _PLAIN_ADDRESS.match(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def dot_stuff(data: bytes) -> bytes:
    """smtplib's ``_quote_periods`` — ``re.sub(br'(?m)^\\.', b'..', data)``: a dot that starts
    a line (the data, or after any LF) is doubled — without a regex. ``data`` itself when no
    line starts with a dot (a built message: base64 parts, headers, boundaries)."""
    if not _line_starts_with_dot(data):
        return data
    stuffed = data.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _line_starts_with_dot(data: bytes) -> bool:
    """Whether a line of ``data`` starts with a dot. Found from the dots (``bytes.find`` of one
    byte is a ``memchr``; the base64 parts of a message have none, its headers a few): several
    times faster on a 78 kB message than searching the two bytes LF dot."""
    at = data.find(b".")
    while at >= 0:
        if at == 0 or data[at - 1] == 0x0A:
            return True
        at = data.find(b".", at + 1)
    return False


def _data(conn: smtplib.SMTP, data: bytes,
          reply: tuple[int, bytes] | None = None) -> tuple[int, bytes]:
    """``smtplib.SMTP.data`` for bytes, with :func:`dot_stuff`; ``reply``: the server's answer
    to a DATA command already sent (pipelined), else DATA is sent here."""
    if reply is None:
        conn.putcmd("data")
        reply = conn.getreply()
    code, text = reply
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    stuffed = dot_stuff(data)
    if stuffed[-2:] != b"\r\n":
        stuffed += b"\r\n"
    conn.send(stuffed + b".\r\n")
    return conn.getreply()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

