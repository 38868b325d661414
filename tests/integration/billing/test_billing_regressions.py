"""Regressions of issue 12, on SQLite and PostgreSQL: each failed on the code before its fix.

Carried time-weighted levels, reruns and dry runs after a credit note, a broken subscription
that must not block the others, usage across a plan change, VAT rates stored normalized.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.domain.usage import UsageEvent
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.usage_import import record_usage
from sealbill.store import queries
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties import records as parties
from sealbill.store.schema import invoice_lines, invoice_tax_lines, invoices, subscriptions
from tests.support.scenario import Scenario, build_scenario

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def _at(day: int, month: int = 10) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def _storage_plan(code: str = "store", price: str = "0.10") -> Plan:
    return Plan(code, code.title(), Interval.MONTH, "EUR", 1, date(2020, 1, 1), (
        Charge("gb", ChargeModel.PER_UNIT, "Stockage", "Storage",
               ChargeProperties(unit_price=Decimal(price)), metric_code="storage_gb"),))


def _usage_scenario(engine: Engine, tmp_path: Path) -> Scenario:
    s = build_scenario(engine, accounts=2, files_dir=tmp_path, render=False)
    with engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "storage_gb", "Storage", "time_weighted_sum")
        catalog_store.add_plan(conn, s.org_id, _storage_plan(), NOW)
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0001"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "store", date(2026, 9, 1), NOW)
    return s


def _usage_lines(engine: Engine, org_id: int, run_id: int, reference: str) -> list[int]:
    with engine.begin() as conn:
        rows = [r for r in queries.list_invoices(conn, org_id, run_id=run_id)
                if r["account_reference"] == reference]
        assert len(rows) == 1
        invoice_id = rows[0]["id"]
        return [int(a) for a, d in conn.execute(
            sa.select(invoice_lines.c.amount_minor, invoice_lines.c.description).where(
                invoice_lines.c.invoice_id == invoice_id)) if "Stockage" in d]


def test_time_weighted_usage_counts_the_level_carried_from_before_the_period(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _usage_scenario(any_engine, tmp_path)
    # 500 GB set in August and never changed: October is a full month of 500 GB.
    record_usage(any_engine, s.org_id, [
        UsageEvent("lvl-1", "A0001", "storage_gb", _at(20, 8), Decimal(500))])
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert _usage_lines(any_engine, s.org_id, result.run_id or 0, "A0001") == [5000]


def test_carried_level_is_replaced_by_the_events_of_the_period(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _usage_scenario(any_engine, tmp_path)
    record_usage(any_engine, s.org_id, [
        UsageEvent("lvl-1", "A0001", "storage_gb", _at(20, 8), Decimal(300)),
        UsageEvent("lvl-2", "A0001", "storage_gb", _at(25, 9), Decimal(310)),
        # 310 GB for 10 days then 0 for 21 days of 31: 100 GB-month → 10.00 EUR
        UsageEvent("lvl-3", "A0001", "storage_gb", _at(11), Decimal(0))])
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert _usage_lines(any_engine, s.org_id, result.run_id or 0, "A0001") == [1000]


def test_carried_levels_are_kept_per_group_key(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "storage_gb", "Storage", "time_weighted_sum",
                                 group_by="bucket")
        catalog_store.add_plan(conn, s.org_id, _storage_plan(), NOW)
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0001"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "store", date(2026, 9, 1), NOW)
    record_usage(any_engine, s.org_id, [  # two buckets, each last set before October
        UsageEvent("b1", "A0001", "storage_gb", _at(2, 8), Decimal(100), {"bucket": "a"}),
        UsageEvent("b2", "A0001", "storage_gb", _at(9, 9), Decimal(300), {"bucket": "a"}),
        UsageEvent("b3", "A0001", "storage_gb", _at(20, 9), Decimal(200), {"bucket": "b"})])
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    # 300 + 200 GB all October: 500 GB-months at 0.10
    assert _usage_lines(any_engine, s.org_id, result.run_id or 0, "A0001") == [5000]


def _cancel_now(engine: Engine, s: Scenario, reference: str) -> None:
    with engine.begin() as conn:
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids[reference])).scalar_one()
        catalog_store.cancel(conn, s.org_id, sub_id, on=date(2026, 10, 11),
                             at_period_end=False)


def _documents(engine: Engine, org_id: int) -> list[tuple[str, str, int]]:
    with engine.begin() as conn:
        return sorted((r.kind, r.billing_key, r.total_incl_minor) for r in conn.execute(
            sa.select(invoices.c.kind, invoices.c.billing_key, invoices.c.total_incl_minor)
            .where(invoices.c.organization_id == org_id)))


def test_rerun_of_a_period_that_issued_a_credit_note_issues_nothing_and_does_not_crash(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    _cancel_now(any_engine, s, "A0001")
    first = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    finalize_run(any_engine, s.org_id, first.run_id or 0)
    before = _documents(any_engine, s.org_id)
    assert [k for k, _, _ in before].count("credit_note") == 1
    again = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert (again.drafted, again.already_billed) == (0, 2)
    resumed = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert resumed.drafted == 0
    assert _documents(any_engine, s.org_id) == before


def test_dry_run_shows_exactly_what_the_real_run_does(any_engine: Engine,
                                                      tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False)
    _cancel_now(any_engine, s, "A0001")
    preview = bill_period(any_engine, s.org_id, "2026-11", actor="t", dry_run=True)
    real = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert (preview.drafted, preview.totals) == (real.drafted, real.totals) == (3, real.totals)
    assert [p["kind"] for p in preview.previews].count("credit_note") == 1
    finalize_run(any_engine, s.org_id, real.run_id or 0)
    written = _documents(any_engine, s.org_id)
    after = bill_period(any_engine, s.org_id, "2026-11", actor="t", dry_run=True)
    assert (after.drafted, after.previews, after.already_billed) == (0, [], 3)
    assert _documents(any_engine, s.org_id) == written


def test_a_broken_subscription_is_reported_and_the_other_accounts_are_billed(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        # A plan change to a plan with no price in effect yet: that subscription cannot be
        # rated, the two other accounts can.
        catalog_store.add_plan(conn, s.org_id, Plan(
            "future", "Future", Interval.MONTH, "EUR", 1, date(2030, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abo", "Sub",
                       ChargeProperties(amount=Decimal(5))),)), NOW)
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0002"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "future", date(2026, 10, 20), NOW)
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert result.drafted == 2 and result.run_id is not None
    assert len(result.problems) == 1 and "A0002" in result.problems[0]
    assert "future" in result.problems[0]
    assert result.as_dict()["problems"] == result.problems
    with any_engine.begin() as conn:
        billed = {r["account_reference"] for r in
                  queries.list_invoices(conn, s.org_id, run_id=result.run_id)}
    assert billed == {"A0001", "A0003"}


def test_usage_across_a_plan_change_is_rated_with_the_plan_in_force_at_each_event(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "calls", "API calls", "sum")
        for code, price in (("dear", "1.00"), ("cheap", "0.10")):
            catalog_store.add_plan(conn, s.org_id, Plan(
                code, code.title(), Interval.MONTH, "EUR", 1, date(2020, 1, 1), (
                    Charge("api", ChargeModel.PER_UNIT, f"API {code}", f"API {code}",
                           ChargeProperties(unit_price=Decimal(price)), metric_code="calls"),
                )), NOW)
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0001"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "dear", date(2026, 9, 1), NOW)
        catalog_store.change_plan(conn, s.org_id, sub_id, "cheap", date(2026, 10, 16), NOW)
    record_usage(any_engine, s.org_id, [
        UsageEvent("c1", "A0001", "calls", _at(3), Decimal(10)),  # dear: 10.00
        UsageEvent("c2", "A0001", "calls", _at(15, 10).replace(hour=23), Decimal(5)),  # 5.00
        UsageEvent("c3", "A0001", "calls", _at(16), Decimal(100))])  # cheap: 10.00
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    done = finalize_run(any_engine, s.org_id, result.run_id or 0)
    with any_engine.begin() as conn:
        invoice = load_invoice(conn, s.org_id, done[0][0])
    usage = {line.description.split(" - ")[0]: line.amount_minor for line in invoice.lines
             if line.description.startswith("API")}
    assert usage == {"API dear": 1500, "API cheap": 1000}
    spans = sorted((line.period_start, line.period_end) for line in invoice.lines
                   if line.description.startswith("API"))
    assert spans == [(date(2026, 10, 1), date(2026, 10, 15)),
                     (date(2026, 10, 16), date(2026, 10, 31))]


def test_vat_rates_are_stored_and_shown_normalized(any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    preview = bill_period(any_engine, s.org_id, "2026-11", actor="t", dry_run=True)
    assert preview.previews[0]["lines"][0]["vat"] == "S 20"
    with any_engine.begin() as conn:
        rates = set(conn.execute(sa.select(
            sa.type_coerce(invoice_tax_lines.c.vat_rate, sa.String()))).scalars())
        line_rates = set(conn.execute(sa.select(
            sa.type_coerce(invoice_lines.c.vat_rate, sa.String()))).scalars())
    assert rates == line_rates == {"20"}


def _yearly_usage_scenario(engine: Engine, tmp_path: Path, usage_interval: Interval | None
                           ) -> Scenario:
    s = build_scenario(engine, accounts=1, files_dir=tmp_path, render=False)
    with engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "calls", "API calls", "sum")
        catalog_store.add_plan(conn, s.org_id, Plan(
            "annual", "Annual", Interval.YEAR, "EUR", 1, date(2020, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abonnement annuel", "Yearly",
                       ChargeProperties(amount=Decimal("120.00"))),
                Charge("api", ChargeModel.PER_UNIT, "API", "API",
                       ChargeProperties(unit_price=Decimal("0.50")), metric_code="calls",
                       usage_interval=usage_interval))), NOW)
        account_id = parties.create_account(
            conn, s.org_id, reference="Y1", name="Yearly SA", address_line1="1 rue Y",
            postcode="75001", city="Paris", country="FR", is_business=True, currency="EUR",
            locale="fr", vat_id_valid=False, is_internal_test=False)
        catalog_store.add_subscription(conn, s.org_id, account_id, "sub-y", "annual",
                                       date(2026, 1, 1), NOW)
    record_usage(engine, s.org_id, [
        UsageEvent(f"u{m}", "Y1", "calls", _at(10, m), Decimal(m)) for m in range(1, 13)])
    return s


def _lines_of(engine: Engine, org_id: int, run_id: int | None) -> list[tuple[str, int]]:
    with engine.begin() as conn:
        ids = [r["id"] for r in queries.list_invoices(conn, org_id, run_id=run_id)
               if r["account_reference"] == "Y1"]
        return [(d.split(" - ")[0], int(a)) for d, a in conn.execute(
            sa.select(invoice_lines.c.description, invoice_lines.c.amount_minor)
            .where(invoice_lines.c.invoice_id.in_(ids)).order_by(invoice_lines.c.id))]


def test_usage_of_a_yearly_plan_is_billed_every_month_in_arrears_by_default(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _yearly_usage_scenario(any_engine, tmp_path, None)
    november = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert november.problems == []
    assert _lines_of(any_engine, s.org_id, november.run_id) == [("API", 500)]  # 10 calls
    january = bill_period(any_engine, s.org_id, "2027-01", actor="t")
    assert sorted(_lines_of(any_engine, s.org_id, january.run_id)) == [
        ("API", 600), ("Abonnement annuel", 12000)]


def test_usage_of_a_charge_billed_yearly_waits_for_the_anniversary(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _yearly_usage_scenario(any_engine, tmp_path, Interval.YEAR)
    november = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert (november.drafted, november.problems) == (1, [])  # A0001's monthly fee only
    january = bill_period(any_engine, s.org_id, "2027-01", actor="t")
    assert sorted(_lines_of(any_engine, s.org_id, january.run_id)) == [
        ("API", 50 * sum(range(1, 13))), ("Abonnement annuel", 12000)]


def test_a_plan_with_an_interval_sealbill_does_not_bill_blocks_only_its_subscriptions(
        any_engine: Engine, tmp_path: Path) -> None:
    from sealbill.store.schema import plans

    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_plan(conn, s.org_id, Plan(
            "weekly", "Weekly", Interval.MONTH, "EUR", 1, date(2020, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abo", "Sub",
                       ChargeProperties(amount=Decimal(5))),)), NOW)
        conn.execute(sa.update(plans).where(plans.c.code == "weekly").values(interval="week"))
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0002"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "weekly", date(2026, 10, 20), NOW)
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert result.drafted == 1
    assert len(result.problems) == 1 and "A0002" in result.problems[0]
    assert "week" in result.problems[0]


def test_bill_finalize_credit_rerun_dry_run_and_rerun_after_a_plan_change_never_duplicate(
        any_engine: Engine, tmp_path: Path) -> None:
    from sealbill.pipeline.billing.finalize import issue_credit_note

    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False)
    _cancel_now(any_engine, s, "A0001")  # November: a credit note for A0001
    first = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    numbers = [n for _, n in finalize_run(any_engine, s.org_id, first.run_id or 0)]
    issue_credit_note(any_engine, s.org_id, next(n for n in numbers if n.startswith("F-")),
                      reason="geste", amount_minor=100)
    documents = _documents(any_engine, s.org_id)
    assert bill_period(any_engine, s.org_id, "2026-11", actor="t").drafted == 0
    dry = bill_period(any_engine, s.org_id, "2026-11", actor="t", dry_run=True)
    assert (dry.drafted, dry.previews) == (0, [])
    with any_engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "storage_gb", "Storage", "time_weighted_sum")
        catalog_store.add_plan(conn, s.org_id, _storage_plan("bigger", "1"), NOW)
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0002"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "bigger", date(2026, 10, 20), NOW)
    # The period is billed: a later plan change of October does not bill it again.
    assert bill_period(any_engine, s.org_id, "2026-11", actor="t").drafted == 0
    assert _documents(any_engine, s.org_id) == documents
    # December's preview and run agree, and a rerun of December adds nothing.
    preview = bill_period(any_engine, s.org_id, "2026-12", actor="t", dry_run=True)
    december = bill_period(any_engine, s.org_id, "2026-12", actor="t")
    assert (preview.drafted, preview.totals) == (december.drafted, december.totals)
    assert bill_period(any_engine, s.org_id, "2026-12", actor="t").drafted == 0
