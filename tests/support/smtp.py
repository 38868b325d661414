"""A real aiosmtpd server on loopback for tests: it captures everything it is sent.

``received`` holds every message whose DATA reached the server, whatever it answered (a
message that timed out or was dropped after DATA may still have been delivered in real life,
so a wrong-recipient check must look at all of them); ``accepted`` only those it answered
``250`` to. Faults for the *server* side (never for the guard):

- ``faults.append("4xx" | "5xx" | "drop" | "slow")`` — the next DATA gets that answer;
- ``reject_rcpt[address] = "550 ..."`` — RCPT TO for that address is refused.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterator
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


class _FaultyHandler(SinkHandler):
    def __init__(self, capture: SmtpCapture) -> None:
        super().__init__(maildir=None, on_message=None)
        self.capture = capture

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        refusal = self.capture.reject_rcpt.get(address.lower())
        if refusal:
            return refusal
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
