"""The rest of a run in several forked sender processes, their reports folded into the lead's.

Invariants: the lead's pooled connections are disposed of before the fork (no child inherits
one); each child builds its own sender (own database and SMTP connections, own slice of the
outbox, the guard before each message) and closes its transport whatever ends its phase; the
reason the run stopped is the most serious any child gave (a crash counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from sealbill.pipeline.forked import WorkerDied, run_forked

STOP_PRIORITY = ("halted", "crashed", "smtp_session", "paused", "smtp_failing")


class _Sender(Protocol):
    engine: Any
    report: Any
    transport: Any
    on_progress: Callable[[int], None] | None

    def phase(self, canary: bool | None) -> str | None: ...


def send_forked(lead: _Sender, transport_factory: Callable[[], Any], count: int,
                make: Callable[[int, int, Callable[[int], None]], _Sender]) -> str | None:
    """The rest of the run in ``count`` forked senders (``make(k, count, progress)`` builds
    sender k in the child); returns why they stopped, if they did."""
    lead.engine.dispose()  # no child may inherit a pooled connection

    def work(k: int, progress: Callable[[int], None]) -> dict[str, Any]:
        cpu = time.process_time()
        sender = make(k, count, progress)
        try:
            stopped = sender.phase(canary=None)
        finally:
            sender.transport.close()
        r = sender.report
        return {"stopped": stopped, "attempted": r.attempted, "guard_seconds": r.guard_seconds,
                "seal_seconds": r.seal_seconds, "judged_again": r.judged_again,
                "violations": r.violations, "cpu_seconds": time.process_time() - cpu}

    report = lead.report
    report.senders = count
    reasons: list[str] = []
    for result in run_forked(count, work, lead.on_progress):
        if isinstance(result, WorkerDied):
            reasons.append("crashed")
            continue
        report.attempted += result["attempted"]
        report.guard_seconds += result["guard_seconds"]
        report.seal_seconds += result["seal_seconds"]
        report.judged_again += result["judged_again"]
        report.cpu_seconds += result["cpu_seconds"]
        report.violations += result["violations"]
        if result["stopped"]:
            reasons.append(str(result["stopped"]))
    known = [r for r in STOP_PRIORITY if r in reasons]
    return known[0] if known else (reasons[0] if reasons else None)
