"""Defects the independent oracle (tests/oracle) found, each pinned by a focused test."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.demo.seed import ORGANIZATION
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties import records as parties
from sealbill.store.schema import subscriptions

AT = datetime(2025, 9, 1, tzinfo=UTC)


def _yearly_customer(engine: Engine, slug: str, started: date) -> tuple[int, int]:
    with engine.begin() as conn:
        org_id = create_org(conn, {**ORGANIZATION, "slug": slug})
        catalog_store.add_plan(conn, org_id, Plan(
            "annual", "Annual", Interval.YEAR, "EUR", 1, date(2020, 1, 1),
            (Charge("fee", ChargeModel.FLAT, "Abonnement", "Subscription",
                    ChargeProperties(amount=Decimal("1200"))),)), AT)
        account_id = parties.create_account(
            conn, org_id, reference="Y1", name="Client Y1", address_line1="1 rue A",
            postcode="75001", city="Paris", country="FR", is_business=True, currency="EUR",
            locale="fr", vat_id_valid=False, is_internal_test=False)
        return org_id, catalog_store.add_subscription(conn, org_id, account_id, "sub-y1",
                                                      "annual", started, AT)


def test_a_yearly_plan_cancelled_at_period_end_runs_to_the_end_of_its_year(
        any_engine: Engine) -> None:
    """"At period end" is the end of the subscription's billing period: a year on a yearly
    plan (it used to end the 1st of the next month, as if every plan were monthly)."""
    org_id, sub_id = _yearly_customer(any_engine, "yearly-end", date(2026, 3, 10))
    with any_engine.begin() as conn:
        catalog_store.cancel(conn, org_id, sub_id, on=date(2026, 10, 15), at_period_end=True)
        ends_on = conn.execute(sa.select(subscriptions.c.ends_on).where(
            subscriptions.c.id == sub_id)).scalar_one()
    assert ends_on == date(2027, 3, 1)


def test_a_yearly_plan_cancelled_months_before_its_anniversary_is_credited_at_the_anniversary(
        any_engine: Engine) -> None:
    """The invoice opening a yearly period credits the unused days of the year before; the
    run must read the phases of that whole year, not only of the last month (it used to
    skip the subscription silently: no credit, no problem reported)."""
    org_id, sub_id = _yearly_customer(any_engine, "yearly-cancel", date(2025, 10, 1))
    first = bill_period(any_engine, org_id, "2025-10", actor="test", workers=1)
    finalize_run(any_engine, org_id, first.run_id or 0, issue_date=date(2025, 10, 1))
    with any_engine.begin() as conn:
        catalog_store.cancel(conn, org_id, sub_id, on=date(2026, 9, 1), at_period_end=False)

    result = bill_period(any_engine, org_id, "2026-10", actor="test", workers=1)
    done = finalize_run(any_engine, org_id, result.run_id or 0, issue_date=date(2026, 10, 1))

    assert result.problems == []
    with any_engine.begin() as conn:
        note = load_invoice(conn, org_id, done[0][0])
    # 30 unused days of 365: 1200 × 30 / 365 = 98.63 credited, with 20 % VAT.
    assert (note.kind.value, note.total_excl_minor, note.tax_total_minor) == \
        ("credit_note", 9863, 1973)
