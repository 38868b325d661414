"""Containment for an incident: the kill switch and the revocation of outstanding tokens.

Invariants:
- pausing goes through :mod:`sealbill.store.delivery.switches`, the same kill switch the sender
checks
  before every message, so an incident's pause is the one the sender obeys;
- token revocation marks every row of ``verification_tokens`` (the single-use codes and signed
  links of :mod:`sealbill.store.parties.verification`) of the given accounts that is neither used
  nor
  revoked yet, with the incident as reason; :func:`verification.redeem` then refuses them
  ("revoked"). Expired rows are revoked too: the record should say no code of an affected
  account was left standing;
- both act within the caller's transaction, so they commit or roll back with the incident's
  event that records them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.delivery import switches
from sealbill.store.schema import verification_tokens


def pause_sending(conn: Connection, org_id: int, *, actor: str, reason: str) -> None:
    switches.set_paused(conn, org_id, True, actor=actor, reason=reason)


def revoke_outstanding_tokens(conn: Connection, org_id: int, account_ids: Sequence[int], *,
                              reason: str, at: datetime | None = None) -> int:
    """Revoke every unused, unrevoked token of these accounts; return how many."""
    at = at or datetime.now(UTC)
    revoked = 0
    for start in range(0, len(account_ids), 500):
        revoked += conn.execute(
            sa.update(verification_tokens)
            .where(verification_tokens.c.organization_id == org_id,
                   verification_tokens.c.account_id.in_(list(account_ids[start:start + 500])),
                   verification_tokens.c.used_at.is_(None),
                   verification_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at, revoked_reason=reason[:200])
        ).rowcount
    return revoked
