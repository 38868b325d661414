"""Invoices in another currency with VAT: the exchange rate comes from the operator's table,
is stored with the invoice at finalization (BT-6/BT-111), and its absence is refused before
anything is numbered."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sealbill.documents.render import render_invoice
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.rates_import import RatesRejected, import_rates
from sealbill.pipeline.parties.accounts_import import import_accounts
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.exchange_rates import MissingExchangeRate
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties import records as parties
from tests.support.facturx_check import check_pdf
from tests.support.scenario import account_records, build_scenario

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def _usd_customer(engine: Engine, org_id: int, tmp_path: Path) -> None:
    record = {**account_records(1)[0], "reference": "U1", "currency": "USD", "locale": "en"}
    (tmp_path / "usd.json").write_text(json.dumps([record]))
    with engine.begin() as conn:
        import_accounts(conn, org_id, tmp_path / "usd.json", actor="test")
        catalog_store.add_plan(conn, org_id, Plan(
            "pro-usd", "Pro", Interval.MONTH, "USD", 1, date(2020, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                       ChargeProperties(amount=Decimal("99.90"))),)), NOW)
        account_id = parties.account_ids_by_reference(conn, org_id)["U1"]
        catalog_store.add_subscription(conn, org_id, account_id, "sub-u", "pro-usd",
                                       date(2026, 1, 1), NOW)


def test_usd_invoice_with_vat_carries_the_rate_and_the_vat_in_euros(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    _usd_customer(any_engine, s.org_id, tmp_path)
    run = bill_period(any_engine, s.org_id, "2026-11", actor="t").run_id or 0
    with pytest.raises(MissingExchangeRate, match="USD on or before 2026-11-01"):
        finalize_run(any_engine, s.org_id, run, issue_date=date(2026, 11, 1))
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,date,rate,source\nUSD,2026-10-30,1.0823,BCE\n"
                     "USD,2026-11-02,1.2,BCE\n")
    assert import_rates(any_engine, s.org_id, rates) == {"imported": 2, "duplicates": 0}
    done = finalize_run(any_engine, s.org_id, run, issue_date=date(2026, 11, 1))
    with any_engine.begin() as conn:
        invoices = [load_invoice(conn, s.org_id, i) for i, _ in done]
    usd = next(i for i in invoices if i.currency == "USD")
    assert usd.tax_total_minor == 1998  # 20 % of 99.90 USD
    assert usd.vat_accounting is not None
    assert (usd.vat_accounting.rate, usd.vat_accounting.rate_date) == (
        Decimal("1.0823"), date(2026, 10, 30))  # the latest on or before the issue date
    assert usd.vat_accounting.tax_total_minor == 1846  # 19.98 / 1.0823 = 18.46 EUR
    findings = check_pdf(render_invoice(usd).pdf)
    assert findings == [], "\n".join(map(str, findings))


def test_a_bad_rate_file_lists_every_problem_and_stores_nothing(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    bad = tmp_path / "rates.json"
    bad.write_text(json.dumps([{"currency": "XXX", "date": "2026-10-30", "rate": "1",
                                "source": "BCE"}]).replace("]", ', {"currency": "USD", '
                                '"date": "30/10/2026", "rate": 1.08, "source": ""}]'))
    with pytest.raises(RatesRejected) as caught:
        import_rates(any_engine, s.org_id, bad)
    problems = caught.value.problems
    assert any("record 1: field 'currency'" in p for p in problems)
    assert any("record 2: field 'date'" in p for p in problems)
    assert any("record 2: field rate: floats are not accepted" in p for p in problems)
    assert any("record 2: field 'source'" in p for p in problems)


def test_import_rates_from_the_command_line(sqlite_engine: Engine, sqlite_url: str,
                                            tmp_path: Path) -> None:
    s = build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path, render=False)
    sqlite_engine.dispose()
    path = tmp_path / "rates.csv"
    path.write_text("currency,date,rate,source\nJPY,2026-10-30,162.5,BCE\n")
    run = [sys.executable, "-m", "sealbill", "import", "rates", str(path), "--org",
           s.org_slug, "--db", sqlite_url, "--json"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"ok": True, "imported": 1, "duplicates": 0}
    path.write_text("currency,date,rate,source\nJPY,2026-10-30,170,BCE\n")
    changed = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert changed.returncode == 1
    assert "already stored as 162.5" in json.loads(changed.stdout)["details"][0]
