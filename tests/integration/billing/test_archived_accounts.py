"""Billing skips an account archived before the period began (not rated, no invoice, not even
counted as a zero invoice), and still bills the period during which it was archived."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import accounts, runs
from sealbill.app.context import local_actor
from sealbill.store.schema import accounts as accounts_table
from tests.integration.api.world import build_org

ROOT = local_actor()


def _archive_on(engine: Engine, org_id: int, ref: str, moment: datetime) -> None:
    accounts.archive(engine, ROOT, org_id, ref)
    with engine.begin() as conn:  # the archive date under test, not the machine's today
        conn.execute(sa.update(accounts_table).where(accounts_table.c.organization_id == org_id)
                     .values(archived_at=moment))


def test_an_account_archived_before_a_period_is_not_billed_for_it(any_engine: Engine) -> None:
    org = build_org(any_engine, "alpha", 1)
    _archive_on(any_engine, org.org_id, org.ids["account_id"],
                datetime(2026, 12, 10, 9, 0, tzinfo=UTC))
    during = runs.start(any_engine, ROOT, org.org_id, "2026-12")
    after = runs.start(any_engine, ROOT, org.org_id, "2027-01")
    assert during["drafted"] == 1  # archived on 10 December: its last invoice
    # Before the rule it was still rated, and counted among the zero invoices skipped.
    assert (after["drafted"], after["skipped_zero"], after["problems"]) == (0, 0, [])
