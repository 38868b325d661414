"""Currencies with 3 and 0 decimals through the whole pipeline, on both databases: a Kuwaiti
dinar (KWD, 3 decimals) and a yen (JPY, 0) account billed, finalized, credited and billed
again with the credit applied. EN 16931 allows 2 decimals at most in an amount (BR-DEC-09 to
BR-DEC-19), so KWD amounts are whole multiples of 10 fils: the stored lines, the totals, the
balance, the XML (2 decimals, exact) and the PDF (3 decimals) agree, and the Factur-X passes
the XSD and the EN 16931 and French CTC schematrons."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy.engine import Engine

from sealbill.documents.cii import NS
from sealbill.documents.render import render_invoice
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.domain.invoices import Invoice
from sealbill.pipeline.billing.finalize import finalize_run, issue_credit_note
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.rates_import import import_rates
from sealbill.pipeline.parties.accounts_import import import_accounts
from sealbill.store.billing import balances
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties import records as parties
from tests.support.facturx_check import check_pdf
from tests.support.scenario import account_records, build_scenario
from tests.unit.documents.test_pdf import pages_text, squash

NOW = datetime(2026, 10, 1, tzinfo=UTC)
SUMS = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
# currency -> (plan price, locale, exchange rate to EUR)
CASES = {"KWD": ("12.370", "fr", "0.3312"), "JPY": ("1999", "en", "162.5")}


def _account(engine: Engine, org_id: int, tmp_path: Path, currency: str) -> int:
    price, locale, rate = CASES[currency]
    record = {**account_records(1)[0], "reference": "X1", "currency": currency,
              "locale": locale}
    (tmp_path / "x.json").write_text(json.dumps([record]))
    (tmp_path / "rates.csv").write_text(f"currency,date,rate,source\n{currency},2026-10-30,"
                                        f"{rate},BCE\n")
    with engine.begin() as conn:
        import_accounts(conn, org_id, tmp_path / "x.json", actor="test")
        catalog_store.add_plan(conn, org_id, Plan(
            "pro-x", "Pro", Interval.MONTH, currency, 1, date(2020, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                       ChargeProperties(amount=Decimal(price))),)), NOW)
        account_id = parties.account_ids_by_reference(conn, org_id)["X1"]
        catalog_store.add_subscription(conn, org_id, account_id, "sub-x", "pro-x",
                                       date(2026, 1, 1), NOW)
    import_rates(engine, org_id, tmp_path / "rates.csv")
    return account_id


def _bill(engine: Engine, org_id: int, period: str, day: date) -> dict[str, Invoice]:
    run = bill_period(engine, org_id, period, actor="t").run_id or 0
    done = finalize_run(engine, org_id, run, issue_date=day)
    with engine.begin() as conn:
        return {i.account_reference: i for i in (load_invoice(conn, org_id, n) for n, _ in done)}


def _xml_amounts(xml: bytes) -> dict[str, list[str]]:
    root = etree.fromstring(xml)
    names = ("LineTotalAmount", "TaxBasisTotalAmount", "GrandTotalAmount",
             "TotalPrepaidAmount", "DuePayableAmount")
    found = {n: root.xpath(f"{SUMS}/ram:{n}/text()", namespaces=NS) for n in names}
    found["TaxTotalAmount"] = root.xpath(f"{SUMS}/ram:TaxTotalAmount/text()", namespaces=NS)
    found["lines"] = root.xpath("//ram:SpecifiedTradeSettlementLineMonetarySummation/"
                                "ram:LineTotalAmount/text()", namespaces=NS)
    return found


@pytest.mark.parametrize("currency", sorted(CASES))
def test_three_and_zero_decimal_currencies_agree_everywhere(
        any_engine: Engine, tmp_path: Path, currency: str) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    account_id = _account(any_engine, s.org_id, tmp_path, currency)
    november = _bill(any_engine, s.org_id, "2026-11", date(2026, 11, 1))["X1"]
    kwd = currency == "KWD"
    # VAT 20 % of 12.370 KWD is 2.474, rounded half-up once to whole 10 fils: 2.470; of
    # 1,999 JPY it is 399.8, rounded to whole yen: 400.
    line, vat = (12370, 2470) if kwd else (1999, 400)
    assert [ln.amount_minor for ln in november.lines] == [line]
    assert (november.tax_total_minor, november.total_incl_minor) == (
        vat, line + vat)
    # A partial credit note (5.00 KWD / 500 JPY + VAT) becomes credit of the account...
    credit = 5000 if kwd else 500
    issue_credit_note(any_engine, s.org_id, november.number,
                      reason="Geste", amount_minor=credit, issue_date=date(2026, 11, 20))
    with any_engine.begin() as conn:
        held = balances.balances(conn, s.org_id, [account_id])
    assert held == {(account_id, currency): credit * 6 // 5}
    # ... that December applies: BT-113 paid and BT-115 due, 2 decimals at most in the XML.
    december = _bill(any_engine, s.org_id, "2026-12", date(2026, 12, 1))["X1"]
    assert december.prepaid_minor == credit * 6 // 5
    rendered = render_invoice(december)
    findings = check_pdf(rendered.pdf)
    assert findings == [], "\n".join(map(str, findings))
    xml = _xml_amounts(rendered.xml)
    total, paid = line + vat, credit * 6 // 5
    if kwd:
        assert xml["lines"] == ["12.37"] and xml["LineTotalAmount"] == ["12.37"]
        assert xml["GrandTotalAmount"] == ["14.84"] and xml["TotalPrepaidAmount"] == ["6.00"]
        assert xml["DuePayableAmount"] == ["8.84"] and "2.47" in xml["TaxTotalAmount"]
        printed = ("12,370", "2,470", "14,840", "6,000", "8,840")  # fils, French locale
    else:
        assert xml["lines"] == ["1999"] and xml["GrandTotalAmount"] == ["2399"]
        assert xml["TotalPrepaidAmount"] == ["600"] and xml["DuePayableAmount"] == ["1799"]
        printed = ("1,999", "400", "2,399", "1,799")
    assert total - paid == december.amount_due_minor
    # BT-111: the VAT in euros at the stored rate (2.47 / 0.3312; 400 / 162.5), in the XML.
    euros = "7.46" if kwd else "2.46"
    assert euros in xml["TaxTotalAmount"] and len(xml["TaxTotalAmount"]) == 2
    assert december.vat_accounting.tax_total_minor == int(
        euros.replace(".", ""))
    text = squash("".join(pages_text(rendered.pdf)))
    assert all(squash(amount) in text for amount in printed), text
    with any_engine.begin() as conn:
        assert balances.balances(conn, s.org_id, [account_id]) == {}
