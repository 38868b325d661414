"""A real aiosmtpd server on loopback for tests: it captures everything it is sent.

``received`` holds every message whose DATA reached the server, whatever it answered (a
message that timed out or was dropped after DATA may still have been delivered in real life,
so a wrong-recipient check must look at all of them); ``accepted`` only those it answered
``250`` to. Faults for the *server* side (never for the guard):

- ``faults.append("4xx" | "5xx" | "drop" | "slow")`` — the next DATA gets that answer;
- ``reject_rcpt[address] = "550 ..."`` — RCPT TO for that address is refused, always;
- ``rcpt_script[address] = deque(["450 ...", ...])`` — the next RCPT TOs for that address get
  these replies, one each, then it is accepted (a mailbox that recovers);
- ``mail_reply = "554 5.7.1 Client host rejected"`` — every MAIL FROM gets that reply (a
  relay refusing the session), until set back to ``None``.

``refusing_server(reply)`` is a bare TCP server whose greeting is ``reply`` (a relay refusing
the connection itself, ``554 ...`` at connect).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from sealbill.mail.sink import Received, SinkHandler, start_sink


@dataclass
class SmtpCapture:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    reject_rcpt: dict[str, str] = field(default_factory=dict)
    rcpt_script: dict[str, deque[str]] = field(default_factory=dict)
    mail_reply: str | None = None
    slow_seconds: float = 3.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted_by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for message in self.accepted:
            for rcpt in message.rcpt_tos:
                out.setdefault(rcpt.lower(), []).append(message)
        return out

    def all_recipients(self) -> set[str]:
        """Every address any DATA was addressed to, accepted or not."""
        return {r.lower() for m in self.received for r in m.rcpt_tos}

    def accepted_pairs(self) -> Counter[tuple[str | None, str]]:
        """(Message-ID, recipient) -> how many times the server took that message for it."""
        return Counter((m.message_id, r.lower()) for m in self.accepted for r in m.rcpt_tos)


class _FaultyHandler(SinkHandler):
    def __init__(self, capture: SmtpCapture) -> None:
        super().__init__(maildir=None, on_message=None)
        self.capture = capture

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.capture.mail_reply:
            return self.capture.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        refusal = self.capture.reject_rcpt.get(address.lower())
        if refusal:
            return refusal
        with self.capture.lock:
            script = self.capture.rcpt_script.get(address.lower())
            scripted = script.popleft() if script else None
        if scripted:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def respond(self, received: Received, server: Any) -> str:
        with self.capture.lock:
            self.capture.received.append(received)
            fault = self.capture.faults.popleft() if self.capture.faults else None
        if fault == "4xx":
            return "451 4.3.0 try again later"
        if fault == "5xx":
            return "554 5.6.0 message refused"
        if fault == "drop":
            # The DATA reached us, then the connection dies without an answer.
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        if fault == "slow":
            await asyncio.sleep(self.capture.slow_seconds)
        with self.capture.lock:
            self.capture.accepted.append(received)
        return "250 OK: captured"


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    capture = SmtpCapture(host="127.0.0.1", port=0)
    handler = _FaultyHandler(capture)
    controller = start_sink(handler, host="127.0.0.1")
    capture.port = int(controller.port)
    try:
        yield capture
    finally:
        controller.stop()


@contextmanager
def refusing_server(reply: str) -> Iterator[int]:
    """A TCP server on loopback that greets every connection with ``reply`` and hangs up (a
    relay refusing the client at connect). Yields its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(f"{reply}\r\n".encode())
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
