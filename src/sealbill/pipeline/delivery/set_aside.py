"""Set a message aside, retry it, and what a run's state means (exit codes, readable report).

``run set-aside RUN --invoice N --reason TEXT``: the operator excludes that message from the run
(or confirms the guard's set-aside of it), recorded with who, when and why. Once every message
the guard set aside in a halted run is confirmed, the run leaves ``halted`` and ``run send``
sends the rest. ``run retry RUN --invoice N``: a set-aside message is queued again; the next
``run send`` passes it through the whole guard again, on the data as it is then.

Invariants:
- nothing here sends: a retried message reaches SMTP only through the guard;
- a set-aside or retry is recorded (outbox columns, and a resolved alert row as the audit
  trail); a message already ``sent``, ``sending`` or ``failed_permanent`` cannot be set aside;
- :func:`exit_code` is a function of the run's status and outbox counts alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.store.delivery import alerts
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import plans as plan_store
from sealbill.store.schema import delivery_envelopes, invoices, outbox

EXIT_OK, EXIT_HELD, EXIT_HALTED, EXIT_UNDELIVERED = 0, 3, 4, 5
EXIT_CODES = {
    EXIT_OK: "every message of the run was delivered",
    1: "the command failed (an error; nothing about the run's state)",
    2: "bad usage (an unknown option, a malformed value)",
    EXIT_HELD: "the plan is held: it awaits an approval (`sealbill run approve`)",
    EXIT_HALTED: "the guard halted the run, or messages are set aside",
    EXIT_UNDELIVERED: "messages are left undelivered (queued, retrying, failed, no recipient)",
}
OUTBOX_STATES = ("queued", "sending", "sent", "failed_temporary", "failed_permanent", "held",
                 "set_aside")
SET_ASIDE_FROM = ("queued", "failed_temporary", "held", "set_aside")


class SetAsideError(RuntimeError):
    """The message cannot be set aside or retried (reason in the message)."""


def exit_code(run_status: str, counts: Mapping[str, int]) -> int:
    """0 all delivered; 3 held for approval; 4 halted or set aside; 5 anything undelivered."""
    if run_status == "held":
        return EXIT_HELD
    if run_status == "halted" or counts.get("set_aside", 0):
        return EXIT_HALTED
    undelivered = sum(n for state, n in counts.items() if state != "sent")
    if undelivered or not counts:
        return EXIT_UNDELIVERED
    return EXIT_OK


def all_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Every outbox state, zero included, so a reader never mistakes absent for none."""
    return {state: int(counts.get(state, 0)) for state in (*OUTBOX_STATES, *counts)}


_ROW_QUERY = (
    sa.select(outbox.c.id, outbox.c.status, outbox.c.set_aside_by, outbox.c.set_aside_reason,
              outbox.c.set_aside_evidence, outbox.c.envelope_id, outbox.c.message_id,
              outbox.c.recipient_outcomes, outbox.c.last_error, delivery_envelopes.c.recipients,
              invoices.c.number)
    .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
    .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id))


def _row(conn: Connection, org_id: int, run_id: int, number: str) -> Any:
    row = conn.execute(_ROW_QUERY.where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
        invoices.c.organization_id == org_id, invoices.c.number == number)).first()
    if row is None:
        raise SetAsideError(f"run {run_id} has no message for invoice {number!r}")
    return row


def _release_if_confirmed(conn: Connection, org_id: int, run_id: int, actor: str,
                          why: str) -> bool:
    """A halted run whose guard set-asides are all confirmed goes back to ``approved``."""
    run = plan_store.run_row(conn, org_id, run_id)
    if run["status"] != "halted":
        return False
    pending = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
        outbox.c.status == "set_aside", outbox.c.set_aside_by == "guard")).scalar()
    if pending:
        return False
    plan_store.set_run_status(conn, org_id, run_id, "approved", why[:500])
    alerts.resolve(conn, org_id, run_id, actor=actor)
    return True


def set_aside(engine: Engine, org_id: int, run_id: int, number: str, *, actor: str,
              reason: str) -> dict[str, Any]:
    with engine.begin() as conn:
        return set_aside_in(conn, org_id, run_id, number, actor=actor, reason=reason)


def set_aside_in(conn: Connection, org_id: int, run_id: int, number: str, *, actor: str,
                 reason: str) -> dict[str, Any]:
    """:func:`set_aside` in the caller's transaction (the caller's audit entry commits with
    it)."""
    if not reason.strip() or not actor.strip():
        raise SetAsideError("setting a message aside needs --by and a --reason (recorded)")
    row = _row(conn, org_id, run_id, number)
    if row.status not in SET_ASIDE_FROM:
        raise SetAsideError(f"the message of {number} is {row.status}: it cannot be set "
                            "aside")
    evidence = {"previous_status": row.status, "by": actor, "reason": reason,
                "guard": row.set_aside_evidence if row.set_aside_by == "guard" else None}
    box.mark_set_aside(conn, org_id, int(row.id), by=actor,
                       reason=f"set aside by {actor}: {reason}", evidence=evidence)
    alerts.note(conn, org_id, cause="set_aside", actor=actor, run_id=run_id,
                envelope_id=int(row.envelope_id),
                message=f"{number} set aside by {actor}: {reason}", evidence=evidence)
    released = _release_if_confirmed(conn, org_id, run_id, actor,
                                     f"set aside {number} ({actor}: {reason})")
    return {"run_id": run_id, "invoice": number, "message_id": row.message_id,
            "set_aside_by": actor, "run_released": released}


RETRY_FROM = ("set_aside", "failed_temporary", "failed_permanent")


def retry(engine: Engine, org_id: int, run_id: int, number: str | None, *, actor: str,
          reason: str = "") -> dict[str, Any]:
    """Queue again a set-aside message (``number``), or a failed one (``number``, or, with
    ``number`` None, every failed message of the run: temporary failures whose retries ran out,
    messages the server refused). The next ``run send`` checks each from scratch, with the
    whole guard; a failed message goes again only to its recipients neither delivered nor
    bounced (same Message-ID). A message whose recipients all bounced is not re-queued: its
    contacts must be corrected first (then ``run plan --replan``). A ``sent`` message
    (``number``) with a bounced recipient whose contact was corrected since goes again to that
    corrected address only (:mod:`sealbill.pipeline.delivery.resend`)."""
    with engine.begin() as conn:
        return retry_in(conn, org_id, run_id, number, actor=actor, reason=reason)


def retry_in(conn: Connection, org_id: int, run_id: int, number: str | None, *, actor: str,
             reason: str = "") -> dict[str, Any]:
    """:func:`retry` in the caller's transaction (the caller's audit entry commits with it)."""
    if number is not None:
        row = _row(conn, org_id, run_id, number)
        if row.status == "sent":  # delivered to some: the corrected contacts only
            return _resend(conn, org_id, run_id, row, actor=actor, reason=reason)
        if row.status not in RETRY_FROM:
            raise SetAsideError(f"the message of {number} is {row.status}: only a "
                                "set-aside or failed message can be retried")
        targets = [(number, row)]
    else:
        targets = _failed_rows(conn, org_id, run_id)
    queued, skipped = [], []
    for invoice_number, row in targets:
        outcomes = rcpts.reopen(row.recipient_outcomes or {})
        left = rcpts.pending([e for _, e in _recipients(row)], outcomes)
        if row.status != "set_aside" and not left:
            skipped.append({"invoice": invoice_number, "reason": "every recipient bounced"})
            continue
        conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
            status="queued", attempts=0, next_attempt_at=None, updated_at=box.now(),
            recipient_outcomes=outcomes or None,
            last_error=f"retry by {actor}: {reason or 'no reason given'}"[:1000]))
        was = ({"by": row.set_aside_by, "reason": row.set_aside_reason}
               if row.status == "set_aside" else {"status": row.status,
                                                 "reply": row.last_error})
        alerts.note(conn, org_id, cause="retry", actor=actor, run_id=run_id,
                    envelope_id=int(row.envelope_id),
                    message=f"{invoice_number} queued again by {actor} for a fresh guard "
                            "check", evidence={"was": was})
        queued.append(invoice_number)
    if number is not None and skipped:
        raise SetAsideError(f"every recipient of {number} bounced: correct its contacts, "
                            f"then `sealbill run plan {run_id} --replan`")
    run = plan_store.run_row(conn, org_id, run_id)
    if queued and run["status"] in ("sent", "incomplete"):
        plan_store.set_run_status(conn, org_id, run_id, "approved")
    released = _release_if_confirmed(conn, org_id, run_id, actor,
                                     f"retry {number or 'failed messages'}")
    return {"run_id": run_id, "invoice": number, "status": "queued", "queued": queued,
            "skipped": skipped, "run_released": released}


def _resend(conn: Connection, org_id: int, run_id: int, row: Any, *, actor: str,
            reason: str) -> dict[str, Any]:
    from sealbill.pipeline.delivery.resend import ResendError, resend_corrected

    try:
        done = resend_corrected(conn, org_id, run_id, row, actor=actor, reason=reason)
    except ResendError as exc:
        raise SetAsideError(str(exc)) from None
    run = plan_store.run_row(conn, org_id, run_id)
    if run["status"] in ("sent", "incomplete"):
        plan_store.set_run_status(conn, org_id, run_id, "approved")
    return {"run_id": run_id, "invoice": row.number, "status": "queued",
            "queued": [row.number], "skipped": [], "run_released": False, **done}


def _recipients(row: Any) -> list[tuple[int | None, str]]:
    """The message's SMTP recipients as far as the outbox knows: the envelope's contacts and
    any other address an earlier attempt recorded (the archive copy)."""
    contacts = [(int(r["contact_id"]), str(r["email"])) for r in row.recipients or ()]
    known = {rcpts.key(e) for _, e in contacts}
    return contacts + [(None, k) for k in (row.recipient_outcomes or {}) if k not in known]


def _failed_rows(conn: Connection, org_id: int, run_id: int) -> list[tuple[str, Any]]:
    rows = conn.execute(_ROW_QUERY.where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
        outbox.c.status.in_(("failed_temporary", "failed_permanent"))).order_by(outbox.c.id))
    return [(str(r.number), r) for r in rows]


def set_aside_list(conn: Connection, org_id: int, run_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(invoices.c.number, invoices.c.account_reference, outbox.c.message_id,
                  outbox.c.set_aside_by, outbox.c.set_aside_at, outbox.c.set_aside_reason,
                  outbox.c.set_aside_evidence, delivery_envelopes.c.recipients)
        .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
        .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
        .where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
               outbox.c.status == "set_aside").order_by(outbox.c.id))
    out = []
    for r in rows:
        evidence = r.set_aside_evidence or {}
        guard = evidence.get("guard") or evidence
        out.append({
            "invoice": r.number, "account": r.account_reference, "message_id": r.message_id,
            "by": r.set_aside_by, "at": r.set_aside_at, "reason": r.set_aside_reason,
            "recipients": [x["email"] for x in r.recipients or ()],
            "what_to_do": (f"confirm: sealbill run set-aside RUN --invoice {r.number} --reason "
                           "TEXT, then sealbill run send RUN; or fix the cause, then sealbill "
                           f"run retry RUN --invoice {r.number}")
            if r.set_aside_by == "guard" else
            f"sealbill run retry RUN --invoice {r.number} re-queues it for a fresh guard check",
            "violations": [{"rule": v.get("rule"), "message": v.get("message"),
                            "evidence": v.get("evidence")}
                           for v in (guard or {}).get("violations", [])]})
    return out
