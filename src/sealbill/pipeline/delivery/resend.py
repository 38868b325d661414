"""Re-send a delivered invoice to a contact corrected after a bounce, in the same run.

A message accepted for some recipients and bounced for one (at RCPT, or by a DSN later) is
``sent``: the others have it. Once the operator has corrected that contact — a new address,
verified for the account, the bounce flag gone with it — ``run retry RUN --invoice N`` calls
:func:`resend_corrected`: the envelope's entry for that contact takes its address as it is now,
and the message is queued again. The next ``run send`` checks it with the whole guard and sends
it (same Message-ID) only to the recipients neither delivered nor bounced: the corrected
address; the ledger gets a row of its own for it.

Invariants:
- exactly once per (document, recipient): an address already delivered this invoice (its
  outcome, or any ledger row of the invoice) is never put back in the envelope, and delivered
  outcomes are kept so the sender skips them (the archive copy too);
- only the *same* contact, bounced in this message, now resolved with another verified address
  is taken; anyone else needs a new plan (``run plan --replan``), never this shortcut;
- an envelope a held plan's approver saw keeps an approval bound to what it now says only for
  that same contact's corrected address (recorded in the alert's evidence, who and why);
- nothing here sends; every re-send is a resolved alert row (the audit trail).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.domain.send_policy import envelope_digest
from sealbill.pipeline.delivery.plan import resolve_recipients
from sealbill.store.delivery import alerts
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import plans as plan_store
from sealbill.store.schema import delivery_envelopes, delivery_ledger, outbox


class ResendError(RuntimeError):
    """Nothing can be re-sent as asked (the reason says what to do)."""


def resend_corrected(conn: Connection, org_id: int, run_id: int, row: Any, *, actor: str,
                     reason: str) -> dict[str, Any]:
    """Queue ``row`` (a ``sent`` outbox row with its envelope, from set_aside's query) again
    for its corrected contacts; returns {"corrected": [[old, new], ...]}."""
    env = conn.execute(sa.select(delivery_envelopes).where(
        delivery_envelopes.c.organization_id == org_id,
        delivery_envelopes.c.id == row.envelope_id)).one()._mapping
    outcomes = row.recipient_outcomes or {}
    delivered = _delivered(conn, org_id, int(env["invoice_id"]), outcomes)
    account_id = int(env["account_id"])
    now = {r.contact_id: r.email
           for r in resolve_recipients(conn, org_id, [account_id]).get(account_id, [])}
    recipients: list[dict[str, Any]] = []
    corrected: list[list[str]] = []
    for entry in env["recipients"] or ():
        contact_id, email = int(entry["contact_id"]), str(entry["email"])
        state = (outcomes.get(rcpts.key(email)) or {}).get("state")
        new = now.get(contact_id)
        if state == rcpts.BOUNCED and new and rcpts.key(new) != rcpts.key(email) \
                and rcpts.key(new) not in delivered:
            recipients.append({"contact_id": contact_id, "email": new})
            corrected.append([email, new])
        else:
            recipients.append({"contact_id": contact_id, "email": email})
    if not corrected:
        raise ResendError(
            f"the message of {row.number} has no bounced recipient whose contact now has "
            "another verified address: correct the contact (sealbill contacts change-address, "
            "then contacts verify), then retry; delivered recipients never get it twice")
    values: dict[str, Any] = {"recipients": recipients}
    if env["approved_sha256"]:
        archive = plan_store.plan_archive(conn, org_id, int(env["plan_id"]))
        values["approved_sha256"] = envelope_digest(
            int(env["account_id"]), [(int(r["contact_id"]), str(r["email"]))
                                     for r in recipients], archive)
    conn.execute(sa.update(delivery_envelopes).where(
        delivery_envelopes.c.id == row.envelope_id).values(**values))
    conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
        status="queued", attempts=0, next_attempt_at=None, updated_at=box.now(),
        recipient_outcomes=_settled(outcomes, delivered, corrected),
        last_error=f"re-send to corrected contact by {actor}: {reason or 'no reason given'}"
                   [:1000]))
    alerts.note(conn, org_id, cause="resend", actor=actor, run_id=run_id,
                envelope_id=int(row.envelope_id),
                message=f"{row.number} queued again by {actor} for its corrected contact(s) "
                        f"{', '.join(new for _, new in corrected)} only",
                evidence={"corrected": corrected, "delivered": sorted(delivered),
                          "approval_carried": bool(env["approved_sha256"]),
                          "reason": reason})
    return {"corrected": corrected}


def _settled(outcomes: dict[str, Any], delivered: set[str], corrected: list[list[str]]
             ) -> dict[str, Any]:
    """The outcomes the sender reads: delivered and bounced kept (a bounced address that was
    corrected says by which: ``run status`` no longer lists it), and every address the ledger
    shows delivered marked so (a message the relay took whole has no outcome per recipient —
    a DSN then records only the failed one): the sender skips them all."""
    settled = rcpts.reopen(outcomes)
    for old, new in corrected:
        settled[rcpts.key(old)]["replaced_by"] = new
    for address in sorted(delivered - set(settled)):
        settled[address] = {"state": rcpts.DELIVERED, "code": None, "at": box.now().isoformat(),
                            "reply": "delivered earlier (ledger)", "stage": "ledger"}
    return settled


def _delivered(conn: Connection, org_id: int, invoice_id: int,
               outcomes: dict[str, Any]) -> set[str]:
    """Every address this invoice was delivered to: this message's outcomes and the ledger
    (whatever message carried it)."""
    done = {k for k, v in outcomes.items() if v.get("state") == rcpts.DELIVERED}
    for recipients in conn.execute(sa.select(delivery_ledger.c.recipients).where(
            delivery_ledger.c.organization_id == org_id,
            delivery_ledger.c.invoice_id == invoice_id)).scalars():
        done |= {rcpts.key(str(r["email"])) for r in recipients or ()}
    return done

