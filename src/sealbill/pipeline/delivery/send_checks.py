"""What ``run send`` checks about the run as a whole, between and after its sender phases.

Invariants:
- the canary is judged on *systematic* failure: the rest of the run is halted (with an alert
  listing the failed canary messages and the servers' replies) when at least ``min_failures``
  canary messages failed **and** they are at least ``share`` of the canary — so one bad address
  (a 550 for one recipient) in a small canary never strands the rest of the run; the message
  that failed stays listed by ``run status`` with its reply and the next step. A canary
  message counts as failed when no customer received it (``failed_permanent``,
  ``failed_temporary`` or left ``sending``); one delivered to some of its recipients (the
  others bounced) does not count. A failure of the *message itself* — DATA refused, or
  deferred until the retries ran out, which would happen to every message alike — halts on its
  own, whatever the counts. The senders record every canary outcome
  before this check (:mod:`sealbill.pipeline.delivery.pending`);
- a run is ``sent`` only when no message is left that a later send would try again;
- the canary is read a page of rows at a time (:func:`canary_tally`), keeping only the rows
  that count against it: memory does not grow with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.store.delivery import alerts, outbox_runs
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_outcomes as outcomes_store
from sealbill.store.delivery import plans as plan_store


def retryable_left(conn: Any, org_id: int, run_id: int, max_attempts: int) -> bool:
    """Whether a message of the run may still be sent (asked of the database: no list)."""
    return outbox_runs.any_left(conn, org_id, run_id, max_attempts)


FAILED = ("sending", "failed_temporary", "failed_permanent")


def canary_halts(failed: int, size: int, min_failures: int, share: float) -> bool:
    """N of M: at least ``min_failures`` failed and at least ``share`` of the canary."""
    return failed >= max(1, min_failures) and failed >= share * size


CANARY_STATUSES = ("queued", "sending", "sent", "failed_temporary", "failed_permanent",
                   "held", "set_aside")
CANARY_PAGE = 1000  # canary rows read at a time


@dataclass
class CanaryTally:
    """The canary's rows counted a page at a time (the canary is 1 % of the run: 3,000 rows
    at 300,000 accounts were listed whole). Keeps the rows that count against it only: the
    failed ones and those set aside or held with recipients (none when the canary went)."""

    confirmed: set[int]  # set aside by an operator: out of the run
    size: int = 0
    failed: list[box.OutboxItem] = field(default_factory=list)
    stopped: list[box.OutboxItem] = field(default_factory=list)
    message_level: bool = False  # a failure of the message itself (any recipient)

    def add(self, r: box.OutboxItem) -> None:
        if r.outbox_id not in self.confirmed and not (r.status == "held" and not r.recipients):
            self.size += 1
        if r.status in FAILED:
            self.failed.append(r)
            self.message_level = self.message_level or rcpts.message_level(r.outcomes)
        elif (r.status == "set_aside" and r.outbox_id not in self.confirmed) or (
                r.status == "held" and r.recipients):
            self.stopped.append(r)


def canary_tally(conn: Any, org_id: int, run_id: int) -> CanaryTally:
    """The run's canary rows, walked by id a page at a time."""
    tally = CanaryTally(outbox_runs.operator_set_aside(conn, org_id, run_id))
    after = 0
    while rows := box.page(conn, org_id, run_id, statuses=CANARY_STATUSES, after=after,
                           limit=CANARY_PAGE, canary=True):
        for row in rows:
            tally.add(row)
        after = rows[-1].outbox_id
    return tally


def check_canary(engine: Engine, org_id: int, run_id: int, min_failures: int = 2,
                 share: float = 0.3) -> str | None:
    """Halt the rest of the run when the canary failed systematically (see the module)."""
    with engine.begin() as conn:
        tally = canary_tally(conn, org_id, run_id)
        systematic = bool(tally.stopped) or tally.message_level
        if not systematic and not canary_halts(len(tally.failed), tally.size, min_failures,
                                               share):
            return None
        failed, size = tally.failed + tally.stopped, tally.size
        plan_store.set_run_status(conn, org_id, run_id, "halted",
                                  f"canary: {len(failed)} of {size} messages not delivered")
        replies = outcomes_store.last_errors(conn, org_id, [r.outbox_id for r in failed])
        alerts.record(conn, org_id, cause="canary_failed", run_id=run_id,
                      message=f"{len(failed)} of {size} canary messages were not delivered "
                              "(a systematic failure); the rest of the run was not sent. "
                              "Fix the cause, then `sealbill run retry` them (or `sealbill "
                              "resume --run`) and `sealbill run send`",
                      evidence={"messages": [{"message_id": r.message_id, "status": r.status,
                                              "reply": replies.get(r.outbox_id)}
                                             for r in failed]})
    return "canary_failed"
