"""Every message of a run that has not reached all its recipients, and what to do about it.

``run status`` (text and ``--json``) lists, per recipient not delivered: the invoice number, the
account, the address, the message's state and this recipient's (``deferred``, ``bounced``,
``refused``...), the server's last reply, and the next step as the command to run. A message
delivered to some recipients but bounced by others is listed for the bounced ones.

Invariant: a row is listed unless the outbox says ``sent`` *and* every recipient of it is
delivered — nothing undelivered is left out (tested against the SMTP server's own record);
a bounced address whose contact was corrected and re-sent to (``replaced_by``) is no longer
listed: the corrected address is, until delivered.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.store.schema import delivery_envelopes, invoices, outbox


def undelivered(conn: Connection, org_id: int, run_id: int, run_status: str,
                run_reason: str | None, run_ref: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(outbox.c.status, outbox.c.message_id, outbox.c.attempts,
                  outbox.c.next_attempt_at, outbox.c.last_error, outbox.c.recipient_outcomes,
                  invoices.c.number, invoices.c.account_reference,
                  delivery_envelopes.c.recipients)
        .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
        .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
        .where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
               sa.or_(outbox.c.status != "sent", outbox.c.recipient_outcomes.is_not(None)))
        .order_by(outbox.c.id))
    out: list[dict[str, Any]] = []
    for row in rows:
        outcomes = row.recipient_outcomes or {}
        addresses = [str(r["email"]) for r in row.recipients or ()]
        known = {rcpts.key(a) for a in addresses}
        addresses += [k for k in outcomes if k not in known]  # the archive copy
        if not addresses:
            addresses = [""]  # held: no verified recipient at all
        for address in addresses:
            mine = outcomes.get(rcpts.key(address)) or {}
            state = mine.get("state")
            if state == rcpts.DELIVERED or (row.status == "sent" and not mine) \
                    or mine.get("replaced_by"):  # bounced, then re-sent to its correction
                continue
            reply = (f"{mine.get('code') or ''} {mine.get('reply') or ''}".strip()
                     if mine else (row.last_error or ""))
            entry = {"invoice": row.number, "account": row.account_reference,
                     "recipient": address or None, "message_id": row.message_id,
                     "status": row.status, "recipient_state": state or row.status,
                     "reply": reply, "attempts": int(row.attempts),
                     "next_attempt_at": row.next_attempt_at, "stage": mine.get("stage")}
            entry["next_step"] = next_step(entry, run_status, run_reason, run_ref)
            out.append(entry)
    return out


def next_step(entry: dict[str, Any], run_status: str, run_reason: str | None,
              run: str) -> str:
    """The command (and the fix before it) that moves this recipient forward."""
    number, state, status = entry["invoice"], entry["recipient_state"], entry["status"]
    retry = f"`sealbill run retry {run} --invoice {number}`"
    if state == rcpts.BOUNCED:
        corrected = (f"correct the contact (`sealbill contacts change-address`, `contacts "
                     f"verify NEW --account {entry['account']}`, `contacts clear-bounce`), then "
                     f"{retry} sends it to the corrected address only")
        if entry.get("stage") == "dsn":
            return ("the relay took it, then a DSN reported the address failed "
                    f"({entry['reply']}): {corrected}; or, once the mailbox works again, "
                    "`sealbill contacts clear-bounce ADDRESS --reason ...`")
        if status == "sent":
            return f"the address refused it (the other recipients have it): {corrected}"
        return ("the address refused it: correct the contact (`sealbill contacts verify NEW "
                f"--account {entry['account']}`), then `sealbill run plan {run} --replan`")
    if status == "set_aside":
        return f"set aside (see below); once the cause is fixed, {retry}"
    if status == "held":
        return ("no verified billing contact: verify one (`sealbill contacts verify EMAIL "
                f"--account {entry['account']}`), then `sealbill run plan {run} --replan`")
    if run_status == "paused":
        return (f"the run is paused on an SMTP relay/configuration fault ({run_reason}): fix "
                f"the SMTP settings or the relay, then `sealbill run send {run}`")
    if run_status == "halted":
        return (f"the run is halted: read the alerts, fix the cause, then `sealbill resume "
                f"--run {run} --reason TEXT`")
    if state == rcpts.REFUSED or status == "failed_permanent":
        return f"the server refused the message itself: fix the cause, then {retry}"
    if status == "failed_temporary" and entry["next_attempt_at"] is None:
        return f"retries exhausted: once the server or address recovers, {retry}"
    return f"`sealbill run send {run}` sends it (retried automatically with backoff)"
