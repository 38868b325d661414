"""Billing runs on both databases: drafts, finalization, reruns, dry runs, tenancy."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.invoices import check_invoice
from sealbill.pipeline.billing.finalize import finalize_run, issue_credit_note, void_invoice
from sealbill.pipeline.billing.invoice import BillingError, bill_period
from sealbill.store import queries
from sealbill.store.billing.invoices import InvoiceStateError, load_invoice
from sealbill.store.parties import records as parties
from sealbill.store.schema import invoices
from tests.support.scenario import build_scenario


def _count(engine: Engine, **where: object) -> int:
    with engine.begin() as conn:
        query = sa.select(sa.func.count()).select_from(invoices)
        for name, value in where.items():
            query = query.where(invoices.c[name] == value)
        return int(conn.execute(query).scalar_one())


def test_rerun_of_a_billing_run_bills_nobody_twice(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=5, files_dir=tmp_path, render=False)
    again = bill_period(any_engine, s.org_id, s.period, actor="someone-else")
    assert (again.drafted, again.already_billed) == (0, 5)
    assert _count(any_engine, organization_id=s.org_id) == 5


def test_finalized_invoices_are_consistent_and_numbered_in_sequence(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=4, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        loaded = [load_invoice(conn, s.org_id, i) for i in s.invoice_ids]
    assert [inv.number for inv in loaded] == [f"F-{n:06d}" for n in range(1, 5)]
    assert all(check_invoice(inv) == [] for inv in loaded)
    assert {inv.buyer.name for inv in loaded} == {f"Client {i} SARL" for i in range(1, 5)}


def test_dry_run_previews_totals_and_writes_nothing(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False)
    preview = bill_period(any_engine, s.org_id, "2026-11", actor="x", dry_run=True)
    assert preview.run_id is None and len(preview.previews) == 3
    assert sum(p["total_incl_minor"] for p in preview.previews) == preview.totals["EUR"] > 0
    assert _count(any_engine, organization_id=s.org_id) == 3


def test_bad_period_is_refused_with_the_field_named(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with pytest.raises(BillingError, match="period"):
        bill_period(any_engine, s.org_id, "2026-13", actor="x")


def test_credit_note_is_its_own_numbered_document_and_invoice_is_unchanged(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        before = load_invoice(conn, s.org_id, s.invoice_ids[0])
    credit_id, number = issue_credit_note(any_engine, s.org_id, before.number, reason="geste",
                                          amount_minor=500)
    with any_engine.begin() as conn:
        credit = load_invoice(conn, s.org_id, credit_id)
        after = load_invoice(conn, s.org_id, s.invoice_ids[0])
    assert number == "AV-000001" and credit.type_code == "381"
    assert credit.corrected_invoice_number == before.number
    assert credit.total_excl_minor == 500 and check_invoice(credit) == []
    assert after == before
    with pytest.raises(InvoiceStateError, match="exceed"):
        issue_credit_note(any_engine, s.org_id, before.number, reason="too much",
                          amount_minor=before.total_excl_minor)


def test_void_issues_a_full_credit_note(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        number = load_invoice(conn, s.org_id, s.invoice_ids[0]).number
    credit_id, _ = void_invoice(any_engine, s.org_id, number, reason="billed by mistake")
    with any_engine.begin() as conn:
        credit = load_invoice(conn, s.org_id, credit_id)
        voided = load_invoice(conn, s.org_id, s.invoice_ids[0])
    assert credit.total_incl_minor == voided.total_incl_minor


def test_one_organization_never_reads_or_bills_another(any_engine: Engine,
                                                       tmp_path: Path) -> None:
    a = build_scenario(any_engine, accounts=2, files_dir=tmp_path / "a", slug="org-a",
                       render=False)
    b = build_scenario(any_engine, accounts=3, files_dir=tmp_path / "b", slug="org-b",
                       render=False)
    with any_engine.begin() as conn:
        with pytest.raises(parties.NotFound):
            load_invoice(conn, b.org_id, a.invoice_ids[0])
        with pytest.raises(parties.NotFound):
            parties.account(conn, b.org_id, a.account_ids["A0001"])
        listed = queries.list_invoices(conn, b.org_id)
        assert parties.verified_billing_recipients(conn, b.org_id,
                                                   a.account_ids["A0001"]) == []
    assert {row["id"] for row in listed} == set(b.invoice_ids)
    assert _count(any_engine, organization_id=a.org_id) == 2
    # Finalizing org B's run with org A's id finalizes nothing of B's.
    with pytest.raises(LookupError):
        finalize_run(any_engine, a.org_id, b.run_id)


def test_plan_change_mid_period_is_prorated_on_the_next_invoice(any_engine: Engine,
                                                               tmp_path: Path) -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
    from sealbill.store.billing import catalog as catalog_store
    from sealbill.store.schema import subscriptions

    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_plan(conn, s.org_id, Plan(
            "premium", "Premium", Interval.MONTH, "EUR", 1, date(2020, 1, 1),
            (Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                    ChargeProperties(amount=Decimal("49.90"))),)), datetime.now(UTC))
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0002"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "premium", date(2026, 10, 16),
                                  datetime.now(UTC))
    result = bill_period(any_engine, s.org_id, "2026-11", actor="x")
    done = dict(finalize_run(any_engine, s.org_id, result.run_id or 0))
    with any_engine.begin() as conn:
        changed = next(load_invoice(conn, s.org_id, i) for i in done
                       if load_invoice(conn, s.org_id, i).account_reference == "A0002")
        steady = next(load_invoice(conn, s.org_id, i) for i in done
                      if load_invoice(conn, s.org_id, i).account_reference == "A0001")
    assert [line.amount_minor for line in steady.lines] == [1990]
    amounts = sorted(line.amount_minor for line in changed.lines)
    # October: Basic was billed in advance for 31 days but used 15; Premium used 16 days.
    basic_used, premium_used = round(Decimal(1990 * 15) / 31), round(Decimal(4990 * 16) / 31)
    assert amounts == sorted([-(1990 - basic_used), premium_used, 4990])
    assert check_invoice(changed) == []


def test_a_yearly_subscription_is_billed_once_a_year_in_its_anniversary_month(
        any_engine: Engine, tmp_path: Path) -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
    from sealbill.store.billing import catalog as catalog_store

    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_plan(conn, s.org_id, Plan(
            "annual", "Annual", Interval.YEAR, "EUR", 1, date(2020, 1, 1),
            (Charge("base", ChargeModel.FLAT, "Abonnement annuel", "Yearly subscription",
                    ChargeProperties(amount=Decimal("120.00"))),)), datetime.now(UTC))
        account_id = parties.create_account(
            conn, s.org_id, reference="Y1", name="Yearly SA", address_line1="1 rue Y",
            postcode="75001", city="Paris", country="FR", is_business=True, currency="EUR",
            locale="fr", vat_id_valid=False, is_internal_test=False)
        catalog_store.add_subscription(conn, s.org_id, account_id, "sub-y", "annual",
                                       date(2026, 1, 1), datetime.now(UTC))
    for period, expected in (("2026-11", 0), ("2026-12", 0), ("2027-01", 1)):
        result = bill_period(any_engine, s.org_id, period, actor="x")
        with any_engine.begin() as conn:
            yearly = [r for r in queries.list_invoices(conn, s.org_id, run_id=result.run_id)
                      if r["account_reference"] == "Y1"]
        assert len(yearly) == expected, period
    assert yearly[0]["total_excl_minor"] == 12000


def test_rating_in_worker_processes_gives_the_same_invoices_as_inline(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbill.pipeline.billing import invoice as billing

    s = build_scenario(sqlite_engine, accounts=9, files_dir=tmp_path, render=False)
    monkeypatch.setattr(billing, "CHUNK", 2)  # 5 chunks: enough for the pool
    inline = bill_period(sqlite_engine, s.org_id, "2026-11", actor="x", dry_run=True,
                         workers=1)
    pooled = bill_period(sqlite_engine, s.org_id, "2026-11", actor="x", dry_run=True,
                         workers=2)
    assert pooled.previews == inline.previews and len(pooled.previews) == 9
    assert pooled.totals == inline.totals


@pytest.mark.parametrize("at_period_end", [True, False])
def test_cancellation_stops_billing_at_period_end_or_credits_the_rest_now(
        any_engine: Engine, tmp_path: Path, at_period_end: bool) -> None:
    from datetime import date
    from decimal import Decimal

    from sealbill.store.billing import catalog as catalog_store
    from sealbill.store.schema import subscriptions

    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0001"])).scalar_one()
        catalog_store.cancel(conn, s.org_id, sub_id, on=date(2026, 10, 11),
                             at_period_end=at_period_end)
    result = bill_period(any_engine, s.org_id, "2026-11", actor="x", dry_run=True)
    cancelled = [p for p in result.previews if p["account_reference"] == "A0001"]
    if at_period_end:
        assert cancelled == []  # October was paid in advance in full; nothing for November
        return
    # Billed 1990 in advance for October, used 10 of 31 days: the rest comes back as a credit
    # note against the October invoice, with positive totals.
    done = dict(finalize_run(any_engine, s.org_id,
                             bill_period(any_engine, s.org_id, "2026-11", actor="x").run_id or 0))
    with any_engine.begin() as conn:
        notes = [load_invoice(conn, s.org_id, i) for i in done]
    credit = next(n for n in notes if n.account_reference == "A0001")
    assert credit.type_code == "381" and credit.number.startswith("AV-")
    assert credit.corrected_invoice_number is not None
    assert credit.total_excl_minor == 1990 - round(Decimal(1990 * 10) / 31) > 0
    assert check_invoice(credit) == []
