"""What a send is told (:class:`SendOptions`) and what it reports (:class:`SendReport`).

Kept apart from :mod:`sealbill.pipeline.delivery.send` so the senders' module holds only the
sending;
both names are imported from there as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sealbill.domain import guard

MAX_BATCH = 100


@dataclass(frozen=True)
class SendOptions:
    max_attempts: int = 5
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 900.0
    wait_for_retries: bool = True
    max_consecutive_failures: int = 20
    recipient_cap: int = guard.DEFAULT_RECIPIENT_CAP
    senders: int = 1  # sender processes after the canary (each: own connections, own slice)
    # Messages judged in one transaction and sent before their outcomes are written (send.py):
    # a crash may send this many twice per sender; the issue allows at most 100.
    batch: int = 100
    # The canary halts the run when at least this many of its messages failed *and* at least
    # this share of them: a systematic failure, not one bad address (send_checks.py).
    canary_min_failures: int = 2
    canary_failure_share: float = 0.3

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch: {self.batch} is not between 1 and {MAX_BATCH}")


@dataclass
class SendReport:
    run_id: int
    status: str = ""
    stopped: str | None = None  # paused | halted | canary_failed | smtp_failing | smtp_session
    counts: dict[str, int] = field(default_factory=dict)
    attempted: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    guard_seconds: float = 0.0  # CPU time of the guard's steps, summed over the senders
    seal_seconds: float = 0.0  # of which the seal rule (reading the rows, checking the MACs)
    judged_again: int = 0  # messages judged again: their batch outlived the fresh read (1 s)
    cpu_seconds: float = 0.0  # CPU time of the sender processes, summed
    seconds: float = 0.0
    senders: int = 1
