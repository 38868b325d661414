"""Containment for an incident, through the delivery stage's own modules (never around them).

Invariants:
- pausing goes through :mod:`sealbill.store.switches`, the same kill switch the sender checks
  before every message, so an incident's pause is the one the sender obeys;
- token revocation goes through :mod:`sealbill.store.verification`, and covers every token of
  the given accounts that is neither used nor revoked yet;
- both act within the caller's transaction, so they commit or roll back with the incident's
  event that records them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection


def pause_sending(conn: Connection, org_id: int, *, actor: str, reason: str) -> None:
    from sealbill.store import switches  # the delivery stage's kill switch

    switches.pause(conn, org_id, actor=actor, reason=reason)


def revoke_outstanding_tokens(conn: Connection, org_id: int, account_ids: Sequence[int], *,
                              reason: str) -> int:
    from sealbill.store import verification  # the delivery stage's tokens

    return sum(verification.revoke_for_account(conn, org_id, account_id, reason=reason)
               for account_id in account_ids)
