"""The facts the guard's policy rules read fresh, in the claiming transaction (one statement).

Invariant: read from the tables in the same transaction that claims the message, never from the
plan in memory: the account's internal-test flag, the envelope row's recipients and approval
digest, the plan's archive copy and verdict, the organization's archive address now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.send_policy import PolicyFacts
from sealbill.store.delivery.prepared import Prepared, PreparedIds
from sealbill.store.schema import accounts, delivery_envelopes, delivery_plans, organizations

_P = sa.bindparam
_ROWS = (
    sa.select(accounts.c.is_internal_test, delivery_envelopes.c.recipients,
              delivery_envelopes.c.approved_sha256, delivery_plans.c.archive_email,
              delivery_plans.c.verdict, delivery_plans.c.approved_by,
              organizations.c.archive_email.label("archive_now"))
    .select_from(delivery_envelopes
                 .join(delivery_plans, delivery_plans.c.id == delivery_envelopes.c.plan_id)
                 .join(accounts, accounts.c.id == delivery_envelopes.c.account_id)
                 .join(organizations,
                       organizations.c.id == delivery_envelopes.c.organization_id))
    .where(delivery_envelopes.c.organization_id == _P("org"),
           accounts.c.organization_id == _P("org")))
_READ = Prepared(_ROWS.where(delivery_envelopes.c.id == _P("envelope")))
_READ_MANY = PreparedIds(lambda ids: _ROWS.add_columns(
    delivery_envelopes.c.id.label("envelope_id")).where(
        ids(delivery_envelopes.c.id, "envelopes")), ["envelopes"])


def read(conn: Connection, org_id: int, envelope_id: int) -> PolicyFacts:
    return _facts(_READ.first(conn, {"org": org_id, "envelope": envelope_id}))


def read_many(conn: Connection, org_id: int, envelope_ids: Sequence[int]
              ) -> dict[int, PolicyFacts]:
    """:func:`read` for each of ``envelope_ids`` (a sender's batch), in one statement."""
    found = {int(row.envelope_id): _facts(row) for row in _READ_MANY.rows(
        conn, {"org": org_id, "envelopes": list(envelope_ids) or [-1]})}
    return {e: found.get(e, _facts(None)) for e in envelope_ids}


def _facts(row: Any) -> PolicyFacts:
    if row is None:
        return PolicyFacts(None, None, None, None, None, None)
    return PolicyFacts(
        internal_test=bool(row.is_internal_test),
        planned_archive=row.archive_email or "",
        archive_now=row.archive_now or "",
        envelope_recipients=tuple((int(r["contact_id"]), str(r["email"]))
                                  for r in row.recipients or ()),
        approval_required=row.verdict == "hold" and row.approved_by is not None,
        approved_sha256=row.approved_sha256 or "")
