"""A local SMTP server (aiosmtpd) that keeps every message it accepts, for development and tests.

``sealbill smtp-sink --maildir DIR`` writes each accepted message into a Maildir
(``DIR/new/<unique>``), with the SMTP envelope prepended as two headers so that what the server
was *told* (``MAIL FROM`` / ``RCPT TO``) can be compared with what the message *says*:

    X-Sealbill-Envelope-From: billing@seller.example
    X-Sealbill-Envelope-To: alice@customer.example, archive@seller.example

Invariants:
- the envelope headers are written from the SMTP session, never from the message, and the
  addresses in them cannot carry a line break (SMTP commands are single lines; we refuse any
  address with a control character rather than write it);
- a message is acknowledged (``250``) only after it is in the Maildir (``mailbox.Maildir.add``
  writes to ``tmp/`` and renames into ``new/``), so an acknowledged message is never lost.
"""

from __future__ import annotations

import mailbox
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import SMTP
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

ENVELOPE_FROM_HEADER = "X-Sealbill-Envelope-From"
ENVELOPE_TO_HEADER = "X-Sealbill-Envelope-To"


@dataclass(frozen=True)
class Received:
    """One message as the server received it: the SMTP envelope and the raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message_id(self) -> str | None:
        headers = BytesHeaderParser(policy=SMTP).parsebytes(self.data)
        value = headers.get("Message-ID")
        return str(value).strip() if value is not None else None


def _safe_address(address: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address):
        raise ValueError(f"control character in an SMTP address: {address!r}")
    return address


def with_envelope_headers(received: Received) -> bytes:
    """The message bytes with the SMTP envelope prepended as headers (CRLF line ends)."""
    mail_from = _safe_address(received.mail_from)
    rcpts = ", ".join(_safe_address(r) for r in received.rcpt_tos)
    prefix = f"{ENVELOPE_FROM_HEADER}: {mail_from}\r\n{ENVELOPE_TO_HEADER}: {rcpts}\r\n"
    return prefix.encode("ascii", "strict") + received.data


class SinkHandler:
    """aiosmtpd handler: stores each message (Maildir and/or a callback), then answers 250.

    ``respond`` lets a subclass (the test fixture's fault injection) answer something else or
    misbehave; by default every message is accepted.
    """

    def __init__(self, maildir: Path | None = None,
                 on_message: Callable[[Received], None] | None = None) -> None:
        self._maildir = open_maildir(maildir) if maildir else None
        self._on_message = on_message
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(str(r) for r in envelope.rcpt_tos),
            data=bytes(envelope.original_content or envelope.content),
        )
        try:
            return await self.respond(received, server)
        except (OSError, ValueError) as exc:
            # Answered, not raised: aiosmtpd would answer 500 and keep the transaction open,
            # so the client's next MAIL FROM would get "503 nested MAIL command".
            return f"451 4.3.0 message not stored ({type(exc).__name__}); try again later"

    async def respond(self, received: Received, server: Any) -> str:
        self.store(received)
        return "250 OK: queued"

    def store(self, received: Received) -> None:
        with self._lock:
            if self._maildir is not None:
                self._maildir.add(with_envelope_headers(received))
            if self._on_message is not None:
                self._on_message(received)


class DiscardHandler:
    """Accepts and forgets: the fast sink the benchmark sends to."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK: discarded"


def open_maildir(path: Path) -> mailbox.Maildir:
    """The Maildir at ``path``, creating ``tmp``, ``new`` and ``cur`` even in an existing
    folder (``mailbox.Maildir(create=True)`` creates them only when the folder is new)."""
    for sub in ("tmp", "new", "cur"):
        (Path(path) / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(str(path), create=False)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0 itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_sink(handler: Any, host: str = "127.0.0.1", port: int = 0) -> Controller:
    """Start an SMTP server in a background thread; ``port=0`` picks a free port."""
    port = port or free_port(host)
    controller = Controller(handler, hostname=host, port=port,
                            data_size_limit=50 * 1024 * 1024, decode_data=False,
                            ready_timeout=10)
    controller.start()
    return controller


def bound_port(controller: Controller) -> int:
    return int(controller.port)


def read_maildir(maildir: Path) -> list[tuple[dict[str, str], bytes]]:
    """Every message of a sink Maildir: (envelope headers, raw bytes), oldest first."""
    box = mailbox.Maildir(str(maildir), create=False)
    out = []
    for key in sorted(box.keys(), key=_arrival_order):
        raw = box.get_bytes(key)
        headers = BytesHeaderParser(policy=SMTP).parsebytes(raw)
        env = {
            "from": str(headers.get(ENVELOPE_FROM_HEADER, "")),
            "to": str(headers.get(ENVELOPE_TO_HEADER, "")),
        }
        out.append((env, raw))
    return out


_MAILDIR_NAME = re.compile(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.")


def _arrival_order(key: str) -> tuple[int, int, int, str]:
    """The order messages arrived in, from the names ``mailbox.Maildir`` gives them:
    ``<seconds>.M<microseconds>P<pid>Q<count>.<host>``. The microseconds are not zero-padded
    (``M99999`` comes after ``M100000``), so the names are compared as numbers, not text."""
    found = _MAILDIR_NAME.match(key)
    if found is None:
        return (0, 0, 0, key)
    seconds, micros, _pid, count = (int(g) for g in found.groups())
    return (seconds, micros, count, key)
