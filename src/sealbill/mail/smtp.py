"""Send serialized messages over SMTP, one connection reused for a whole run.

Each :meth:`SmtpSender.send` is ``MAIL FROM`` / ``RCPT TO`` x n / ``DATA`` and answers a
:class:`SendResult` whose ``outcome`` is:

- ``sent`` — the server answered 250 to DATA: it has taken responsibility for the message;
- ``temporary`` — 4xx, a dropped connection or a timeout: retry later. After a drop or a timeout
  *during DATA* the server may in fact have the message; the retry reuses the same Message-ID,
  so the receiving side sees the same message twice at worst, never a different one;
- ``permanent`` — 5xx: do not retry. ``refused`` names the recipients the server refused
  (a bounce: the caller flags those contacts).

Invariants: if any RCPT is refused the transaction is reset and DATA is never sent, so a
message goes to all of its recipients or to none; a connection found dead *before* MAIL FROM is
reopened once (nothing was sent on it), never after.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from enum import StrEnum

from sealbill.mail.config import SmtpConfig


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    code: int | None
    detail: str
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


def classify(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    return Outcome.PERMANENT if code >= 500 else Outcome.TEMPORARY


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
            conn = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                    context=self._tls_context())
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        conn.ehlo()
        if cfg.security == "starttls":
            conn.starttls(context=self._tls_context())
            conn.ehlo()
        if cfg.user and cfg.password:
            conn.login(cfg.user, cfg.password)
        return conn

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

    def _mail_from(self, mail_from: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                return self._conn.mail(mail_from)
            except smtplib.SMTPServerDisconnected:
                # An idle connection closed by the server: nothing was sent, reopen once.
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        try:
            return self._send(mail_from, rcpt_to, data)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            return SendResult(classify(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error))
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnects, timeouts (socket.timeout is an OSError), refused connections.
            self._drop()
            return SendResult(Outcome.TEMPORARY, None, f"{type(exc).__name__}: {exc}")

    def _send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        code, resp = self._mail_from(mail_from)
        conn = self._conn
        assert conn is not None
        if code != 250:
            conn.rset()
            return SendResult(classify(code), code, "MAIL FROM: " + _text(resp))
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in rcpt_to:
            rcode, rresp = conn.rcpt(rcpt)
            if rcode not in (250, 251):
                refused[rcpt] = (rcode, _text(rresp))
        if refused:
            conn.rset()
            worst = max(c for c, _ in refused.values())
            return SendResult(classify(worst), worst, "RCPT TO refused", refused)
        dcode, dresp = conn.data(data)
        return SendResult(classify(dcode), dcode, _text(dresp))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

