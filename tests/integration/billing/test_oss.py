"""OSS on both databases: consumers in another member state pay French VAT until the seller's
cross-border sales of the year exceed €10,000, their own country's rate from the supply that
crosses it; the evidence is stored with the invoice; the quarterly return adds it up."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.documents.mentions import check_renderable
from sealbill.documents.render import render_invoice
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.domain.taxes import EU_MEMBER_STATES, VatRateClass
from sealbill.pipeline.billing.finalize import finalize_run, issue_credit_note
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.oss import rate_table, year_totals
from sealbill.pipeline.billing.oss_return import oss_return
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.schema import invoices, organizations
from tests.support.facturx_check import Finding, check_pdf
from tests.support.scenario import Scenario, account_records, build_scenario


def fr_ctc_aside(findings: list[Finding]) -> list[Finding]:
    """The findings of an OSS document but the French CTC's list of French VAT rates
    (BR-FR-16), which a foreign rate always fails (see README, "OSS and the French CTC")."""
    return [f for f in findings if not (f.source == "fr-ctc" and f.rule.startswith("BR-FR-16"))]


def _consumers(ip: list[str]) -> list[dict[str, object]]:
    records = account_records(len(ip), country="DE")
    for record, country in zip(records, ip, strict=True):
        record.update(is_business=False, ip_country=country, postcode="10115", city="Berlin",
                      name=f"Kunde {record['reference']}")
    return records


def _oss_scenario(engine: Engine, tmp_path: Path, ip: list[str]) -> Scenario:
    s = build_scenario(engine, accounts=len(ip), files_dir=tmp_path, render=False,
                       records=_consumers(ip))
    with engine.begin() as conn:  # from November, 4,000 EUR a month
        catalog_store.add_plan(conn, s.org_id, Plan(
            "basic", "Basic", Interval.MONTH, "EUR", 2, date(2026, 11, 1), (
                Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                       ChargeProperties(amount=Decimal("4000.00"))),)), datetime.now(UTC))
    return s


def test_the_supply_that_crosses_10000_euros_and_the_next_ones_pay_the_consumer_rate(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _oss_scenario(any_engine, tmp_path, ["DE", "DE", "DE", "US"])
    preview = bill_period(any_engine, s.org_id, "2026-11", actor="t", dry_run=True)
    result = bill_period(any_engine, s.org_id, "2026-11", actor="t")
    assert preview.previews == [p for p in preview.previews]  # same code path
    assert (preview.totals, preview.problems) == (result.totals, result.problems)
    # October (4 × 19.90) + 4,000 + 4,000 stay below; the third 4,000 crosses it.
    assert len(result.problems) == 1 and "A0004" in result.problems[0]
    assert "second agreeing piece of evidence" in result.problems[0]
    done = finalize_run(any_engine, s.org_id, result.run_id or 0,
                        issue_date=date(2026, 11, 1))
    with any_engine.begin() as conn:
        invoices = sorted((load_invoice(conn, s.org_id, i) for i, _ in done),
                          key=lambda inv: inv.account_reference)
    assert [inv.tax_subtotals[0].rate for inv in invoices] == [Decimal(20), Decimal(20),
                                                               Decimal(19)]
    assert [inv.oss_country for inv in invoices] == [None, None, "DE"]
    assert invoices[2].tax_total_minor == 76000
    pdf = render_invoice(invoices[2]).pdf
    findings = check_pdf(pdf)
    # The French CTC lists the French rates only (BR-FR-16): 19 % fails on the breakdown
    # (BT-119) and the line (BT-152), and nothing else does.
    assert {f.rule for f in findings if f.source == "fr-ctc"} == {"BR-FR-16_BT-119",
                                                                 "BR-FR-16_BT-152"}
    assert fr_ctc_aside(findings) == [], "\n".join(map(str, fr_ctc_aside(findings)))
    with any_engine.begin() as conn:
        figures = oss_return(conn, s.org_id, "2026-Q4")
        facts = conn.exec_driver_sql(
            "SELECT tax_facts FROM invoices WHERE number = ?" if
            any_engine.dialect.name == "sqlite" else
            "SELECT tax_facts FROM invoices WHERE number = %s",
            (invoices[2].number,)).scalar_one()
    assert figures == [{"country": "DE", "rate": "19", "taxable_eur_minor": 400000,
                        "vat_eur_minor": 76000, "documents": 1}]
    stored = facts if isinstance(facts, dict) else json.loads(facts)
    assert stored["scheme"] == "oss" and stored["evidence"]["ip_country"] == "DE"
    assert "VIES not consulted" in stored["evidence"]["notes"][0]
    # December: the threshold is crossed for the rest of the year, from the first supply.
    december = bill_period(any_engine, s.org_id, "2026-12", actor="t", dry_run=True)
    rates = {p["account_reference"]: {line["vat"] for line in p["lines"]}
             for p in december.previews}
    assert rates["A0001"] == rates["A0002"] == {"S 19"}


def test_oss_return_from_the_command_line_as_csv_and_json(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path) -> None:
    s = _oss_scenario(sqlite_engine, tmp_path, ["DE", "DE", "DE"])
    finalize_run(sqlite_engine, s.org_id,
                 bill_period(sqlite_engine, s.org_id, "2026-11", actor="t").run_id or 0,
                 issue_date=date(2026, 11, 1))
    sqlite_engine.dispose()
    base = [sys.executable, "-m", "sealbill", "oss", "return", "--quarter", "2026-Q4",
            "--org", s.org_slug, "--db", sqlite_url]
    as_json = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)["rows"]
    assert [(r["country"], r["rate"], r["taxable_eur"], r["vat_eur"]) for r in rows] == [
        ("DE", "19", "4000.00", "760.00")]
    as_csv = subprocess.run([*base, "--csv", "-"], capture_output=True, text=True, timeout=60)
    assert as_csv.stdout.splitlines() == ["country,rate,taxable_eur,vat_eur,documents",
                                          "DE,19,4000.00,760.00,1"]
    bad = subprocess.run([*base[:-4], "--quarter", "2026-Q5", "--org", s.org_slug, "--db",
                          sqlite_url], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "quarter" in bad.stderr


def test_a_manual_credit_note_carries_the_oss_facts_and_is_deducted_in_its_own_quarter(
        any_engine: Engine, tmp_path: Path) -> None:
    s = _oss_scenario(any_engine, tmp_path, ["DE", "DE", "DE"])
    done = finalize_run(any_engine, s.org_id,
                        bill_period(any_engine, s.org_id, "2026-11", actor="t").run_id or 0,
                        issue_date=date(2026, 11, 1))
    with any_engine.begin() as conn:
        [invoice] = [i for i in (load_invoice(conn, s.org_id, n) for n, _ in done)
                     if i.oss_country == "DE"]
    # A partial credit of 1,000.00 EUR issued in the next quarter (2027-Q1).
    credit_id, _ = issue_credit_note(any_engine, s.org_id, invoice.number, reason="Geste",
                                     amount_minor=100000, issue_date=date(2027, 1, 15))
    with any_engine.begin() as conn:
        note = load_invoice(conn, s.org_id, credit_id)
        q4, q1 = oss_return(conn, s.org_id, "2026-Q4"), oss_return(conn, s.org_id, "2027-Q1")
        year = year_totals(conn, s.org_id, 2026, False)
        facts = conn.execute(sa.select(invoices.c.tax_facts, invoices.c.oss_eur_minor).where(
            invoices.c.id == credit_id)).one()
    assert note.oss_country == "DE" and [t.rate for t in note.tax_subtotals] == [Decimal(19)]
    assert note.tax_total_minor == 19000
    stored = facts.tax_facts if isinstance(facts.tax_facts, dict) else json.loads(
        facts.tax_facts)
    assert stored["scheme"] == "oss" and stored["country"] == "DE"
    assert stored["evidence"]["ip_country"] == "DE" and stored["corrects"] == invoice.number
    assert facts.oss_eur_minor == 0  # a credit does not move the threshold
    assert year.total == 3 * 1990 + 3 * 400000
    assert q4 == [{"country": "DE", "rate": "19", "taxable_eur_minor": 400000,
                   "vat_eur_minor": 76000, "documents": 1}]
    assert q1 == [{"country": "DE", "rate": "19", "taxable_eur_minor": -100000,
                   "vat_eur_minor": -19000, "documents": 1}]
    assert check_renderable(note) == []  # the consumer's rate is allowed (OSS facts carried)
    findings = fr_ctc_aside(check_pdf(render_invoice(note).pdf))
    assert findings == [], "\n".join(map(str, findings))


def _opted_in_with_reduced_charges(engine: Engine, tmp_path: Path,
                                   countries: list[str]) -> Scenario:
    """One consumer per country (billing and IP country agree), the organization opted in
    to OSS, and from November a plan with a standard, a reduced and a super-reduced charge."""
    records = account_records(len(countries))
    for record, country in zip(records, countries, strict=True):
        record.update(country=country, ip_country=country, is_business=False,
                      name=f"Consumer {country}", city="City", postcode="1000")
    s = build_scenario(engine, accounts=len(countries), files_dir=tmp_path, render=False,
                       records=records)
    with engine.begin() as conn:
        conn.execute(sa.update(organizations).where(organizations.c.id == s.org_id)
                     .values(oss_opt_in=True))
        catalog_store.add_plan(conn, s.org_id, Plan(
            "basic", "Basic", Interval.MONTH, "EUR", 2, date(2026, 11, 1), (
                Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                       ChargeProperties(amount=Decimal("30.00"))),
                Charge("books", ChargeModel.FLAT, "Livres numériques", "E-books",
                       ChargeProperties(amount=Decimal("10.00")),
                       vat_rate_class=VatRateClass.REDUCED),
                Charge("press", ChargeModel.FLAT, "Presse en ligne", "Online press",
                       ChargeProperties(amount=Decimal("5.00")),
                       vat_rate_class=VatRateClass.SUPER_REDUCED))), datetime.now(UTC))
    return s


def test_a_reduced_rate_charge_is_billed_in_every_member_state(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    countries = sorted(EU_MEMBER_STATES - {"FR"})
    s = _opted_in_with_reduced_charges(sqlite_engine, tmp_path, countries)
    result = bill_period(sqlite_engine, s.org_id, "2026-11", actor="t")
    assert result.problems == []
    done = finalize_run(sqlite_engine, s.org_id, result.run_id or 0,
                        issue_date=date(2026, 11, 1))
    table, day = rate_table(), date(2026, 11, 1)
    with sqlite_engine.begin() as conn:
        invoices_by_country = {i.oss_country: i for i in
                               (load_invoice(conn, s.org_id, n) for n, _ in done)}
    assert sorted(invoices_by_country) == countries
    for country, invoice in invoices_by_country.items():
        rates = [table.rate(country, c, day) for c in (
            VatRateClass.STANDARD, VatRateClass.REDUCED, VatRateClass.SUPER_REDUCED)]
        taxed = {(line.vat_category.value, line.vat_rate) for line in invoice.lines}
        assert taxed == {("Z" if r == 0 else "S", r) for r in rates}, (country, invoice.lines)
        assert len(invoice.lines) == 3
    assert {(ln.vat_category.value, ln.vat_rate) for ln in invoices_by_country["PL"].lines} == {
        ("S", 23), ("S", 5), ("S", 8)}  # e-press 8 % apart from e-books 5 %
    for country in ("IE", "CZ", "DK", "DE"):  # zero rated, standard only, reduced
        findings = fr_ctc_aside(check_pdf(render_invoice(invoices_by_country[country]).pdf))
        assert findings == [], "\n".join(map(str, findings))
