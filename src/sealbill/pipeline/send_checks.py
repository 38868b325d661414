"""What ``run send`` checks about the run as a whole, between and after its sender phases.

Invariants:
- the rest of a run goes only once every canary message came out ``sent`` (or ``held`` with
  no recipient at all, nothing to deliver): a canary message left ``sending``,
  ``failed_temporary`` or ``failed_permanent`` halts the run with an alert — so the senders
  record every canary outcome before this check (:mod:`sealbill.pipeline.pending`);
- a run is ``sent`` only when no message is left that a later send would try again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from sealbill.store import alerts
from sealbill.store import outbox as box
from sealbill.store import plans as plan_store


def retryable_left(conn: Any, org_id: int, run_id: int, max_attempts: int) -> bool:
    rows = box.items(conn, org_id, run_id, statuses=box.RETRYABLE)
    return any(r.status != "failed_temporary" or r.attempts < max_attempts for r in rows)


def check_canary(engine: Engine, org_id: int, run_id: int) -> str | None:
    """Every canary message must have come out ``sent`` before the rest may go."""
    with engine.begin() as conn:
        rows = box.items(conn, org_id, run_id, canary=True,
                         statuses=("queued", "sending", "failed_temporary", "failed_permanent",
                                   "held", "set_aside"))
        # a canary message an operator set aside (recorded) is out of the run; one the guard
        # set aside and nobody confirmed still stops the rest
        confirmed = box.operator_set_aside(conn, org_id, run_id)
        failed = [r for r in rows if (r.status != "held" or r.recipients)
                  and r.outbox_id not in confirmed]
        if not failed:
            return None
        plan_store.set_run_status(conn, org_id, run_id, "halted",
                                  f"canary: {len(failed)} messages not delivered")
        alerts.record(conn, org_id, cause="canary_failed", run_id=run_id,
                      message=f"{len(failed)} canary messages were not delivered; the rest "
                              "of the run was not sent",
                      evidence={"messages": [{"message_id": r.message_id, "status": r.status}
                                             for r in failed]})
    return "canary_failed"
