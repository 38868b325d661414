"""Incident steps beyond opening and rotating: widening the scope, revoking outstanding tokens.

Invariants:
- widening never narrows: the new scope is the messages the incident already looked at plus
  those named, as an explicit list of ledger message ids (the ledger is append-only, so the
  list means the same messages forever); the previous scope stays in the timeline
  (``scope_changed``, with the reason);
- revoking acts on exactly the accounts of the effective view (the blast radius as corrected),
  in one transaction with its ``tokens_revoked`` event and the record's ``revocations`` entry;
- a closed incident takes neither step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from sealbill.pipeline.incident.actions import radius_in
from sealbill.pipeline.incident.incident_times import require_open
from sealbill.store.db import transaction
from sealbill.store.incident import evidence
from sealbill.store.incident import incidents as store
from sealbill.store.incident.containment import revoke_outstanding_tokens


@dataclass(frozen=True)
class Widened:
    added: int  # messages the scope did not cover before
    total: int  # messages in scope now


def widen_scope(engine: Engine, org_id: int, incident_id: int, message_ids: Iterable[str], *,
                reason: str, actor: str) -> Widened:
    """Add ledger messages to the incident's scope; refused if they add nothing."""
    if len(reason.strip()) < 3:
        raise ValueError("widening the scope needs a reason")
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        current = {m.message_id for m in evidence.ledger_messages(conn, org_id,
                                                                  incident["scope"])}
        wanted = set(message_ids)
        added = wanted - current
        if not added:
            raise ValueError("these messages are already in the incident's scope")
        union = sorted(current | wanted)
        store.update_scope(conn, org_id, incident_id,
                           {"window": None, "run_id": None, "message_ids": union},
                           actor=actor, reason=reason.strip())
    return Widened(len(added), len(union))


def revoke_tokens(engine: Engine, org_id: int, incident_id: int, *, actor: str) -> int:
    """Revoke every outstanding verification code and signed link of the affected accounts."""
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        accounts = sorted({s.subject.account_id
                           for s in radius_in(conn, org_id, incident["scope"]).effective.subjects})
        revoked = revoke_outstanding_tokens(conn, org_id, accounts,
                                            reason=f"incident {incident_id}")
        at = datetime.now(UTC)
        entry = {"at": at.isoformat(), "by": actor, "accounts": len(accounts),
                 "tokens_revoked": revoked}
        store.update_record(conn, org_id, incident_id,
                            {"revocations": [*incident["record"].get("revocations", []), entry]},
                            event="tokens_revoked", actor=actor, detail=entry, at=at)
    return revoked
