"""Operator controls over sending: the kill switch, resuming a halted run, a run's status.

Invariants: pausing takes effect within one message (the sender reads the switch before each
one); resuming a halted run is an explicit, recorded act (who, why) that resolves its alerts and
gives the messages the guard stopped one more pass through the guard — it never sends anything
the guard has not checked again against the data as it is then.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.pipeline.delivery import set_aside as set_asides
from sealbill.pipeline.delivery.undelivered import undelivered
from sealbill.store.delivery import alerts, outbox_runs, switches
from sealbill.store.delivery import plans as plan_store


class ControlError(RuntimeError):
    """The requested control does not apply (reason in the message)."""


def pause(engine: Engine, org_id: int, *, actor: str, reason: str | None) -> None:
    with engine.begin() as conn:
        switches.set_paused(conn, org_id, True, actor=actor, reason=reason)


def resume(engine: Engine, org_id: int, *, actor: str, reason: str,
           run_id: int | None = None) -> dict[str, Any]:
    """Lift the kill switch; with ``run_id``, also release a halted run."""
    with engine.begin() as conn:
        return resume_in(conn, org_id, actor=actor, reason=reason, run_id=run_id)


def resume_in(conn: Connection, org_id: int, *, actor: str, reason: str,
              run_id: int | None = None) -> dict[str, Any]:
    """:func:`resume` in the caller's transaction (its audit entry commits with it)."""
    if not reason.strip():
        raise ControlError("resuming needs a --reason")
    out: dict[str, Any] = {"paused": False, "run_id": run_id}
    switches.set_paused(conn, org_id, False, actor=actor, reason=reason)
    if run_id is None:
        return out
    run = plan_store.run_row(conn, org_id, run_id)
    if run["status"] not in ("halted", "sending", "paused"):
        raise ControlError(f"run {run_id} is {run['status']}: neither halted, paused nor "
                           "stopped while sending")
    out["requeued"] = outbox_runs.requeue_held(conn, org_id, run_id)
    out["alerts_resolved"] = alerts.resolve(conn, org_id, run_id, actor=actor)
    if run["status"] in ("halted", "paused"):
        plan_store.set_run_status(conn, org_id, run_id, "approved",
                                  f"resumed by {actor}: {reason}"[:500])
    return out


def status(engine: Engine, org_id: int, run_id: int, run_ref: str | None = None
           ) -> dict[str, Any]:
    """The run's state: every outbox state counted (zeros included), every recipient not
    delivered with its reply and next step (``undelivered``), the messages set aside with why,
    the plan's verdict, archive and report lines, the exit code it means."""
    with engine.begin() as conn:
        run = plan_store.run_row(conn, org_id, run_id)
        plan = plan_store.plan_row(conn, org_id, run_id)
        counts = outbox_runs.counts(conn, org_id, run_id)
        missing = undelivered(conn, org_id, run_id, str(run["status"]), run["halted_reason"],
                              run_ref or str(run_id))
        code = set_asides.exit_code(str(run["status"]), counts)
        if code == set_asides.EXIT_OK and missing:  # sent, but a recipient bounced
            code = set_asides.EXIT_UNDELIVERED
        return {
            "run_id": run_id, "period": run["period"], "status": run["status"],
            "halted_reason": run["halted_reason"], "started_by": run["started_by"],
            "plan": None if plan is None else {
                "verdict": plan["verdict"], "approved_by": plan["approved_by"],
                "approved_reason": plan["approved_reason"],
                "approved_digest": plan["approved_digest"], "archive": plan["archive_email"],
                "report_lines": (plan["report"] or {}).get("lines", [])},
            "outbox": set_asides.all_counts(counts),
            "set_aside": set_asides.set_aside_list(conn, org_id, run_id),
            "undelivered": missing,
            "exit_code": code,
            "switch": switches.state(conn, org_id),
            "alerts": [{"id": a["id"], "cause": a["cause"], "message": a["message"],
                        "created_at": a["created_at"]}
                       for a in alerts.open_alerts(conn, org_id, run_id)],
        }
