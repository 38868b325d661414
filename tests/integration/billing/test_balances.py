"""Customer balances on both databases: credit notes and manual credits become credit that the
next invoices apply automatically (BT-113 paid, BT-115 due), never below zero."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from lxml import etree
from sqlalchemy.engine import Engine

from sealbill.documents.cii import NS
from sealbill.documents.render import render_invoice
from sealbill.pipeline.billing.finalize import finalize_run, void_invoice
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.store.billing import balances
from sealbill.store.billing.invoices import load_invoice
from tests.support.facturx_check import check_pdf
from tests.support.scenario import build_scenario

SUMS = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"


def test_credit_is_applied_to_the_next_invoices_and_never_goes_below_zero(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        october = [load_invoice(conn, s.org_id, i) for i in s.invoice_ids]
        balances.add_entry(conn, s.org_id, s.account_ids["A0002"], "EUR", 1000,
                           kind="manual", reason="goodwill", actor="test",
                           at=datetime.now(UTC))
    void_invoice(any_engine, s.org_id, october[0].number, reason="billed twice")  # A0001
    run = bill_period(any_engine, s.org_id, "2026-11", actor="t").run_id or 0
    done = finalize_run(any_engine, s.org_id, run, issue_date=date(2026, 11, 1))
    with any_engine.begin() as conn:
        november = {inv.account_reference: inv for inv in
                    (load_invoice(conn, s.org_id, i) for i, _ in done)}
        left = balances.balances(conn, s.org_id, list(s.account_ids.values()))
    full = october[0].total_incl_minor  # 23.88: the voided invoice, credited in full
    assert (november["A0001"].prepaid_minor, november["A0001"].amount_due_minor) == (full, 0)
    assert (november["A0002"].prepaid_minor, november["A0002"].amount_due_minor) == (
        1000, november["A0002"].total_incl_minor - 1000)
    assert november["A0003"].prepaid_minor == 0
    assert left == {}  # everything applied, nothing below zero
    rendered = render_invoice(november["A0002"])
    assert check_pdf(rendered.pdf) == []
    root = etree.fromstring(rendered.xml)
    assert root.xpath(f"{SUMS}/ram:TotalPrepaidAmount/text()", namespaces=NS) == ["10.00"]
    assert root.xpath(f"{SUMS}/ram:DuePayableAmount/text()", namespaces=NS) == [
        f"{(november['A0002'].total_incl_minor - 1000) / 100:.2f}"]


def test_accounts_balance_and_credit_from_the_command_line(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path) -> None:
    s = build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path, render=False)
    sqlite_engine.dispose()
    cli = [sys.executable, "-m", "sealbill", "accounts"]
    common = ["--org", s.org_slug, "--db", sqlite_url, "--json"]
    given = subprocess.run([*cli, "credit", "A0001", "--amount", "5.00", "--reason",
                            "late delivery", *common], capture_output=True, text=True,
                           timeout=60)
    assert given.returncode == 0, given.stderr
    bad = subprocess.run([*cli, "credit", "A0001", "--amount", "5.001", "--reason", "x",
                          *common], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    shown = subprocess.run([*cli, "balance", "A0001", *common], capture_output=True,
                           text=True, timeout=60)
    payload = json.loads(shown.stdout)
    assert payload["balance_minor"] == {"EUR": 500}
    assert [(e["kind"], e["amount_minor"], e["reason"]) for e in payload["history"]] == [
        ("manual", 500, "late delivery")]


def test_a_refund_is_recorded_in_the_history_and_never_takes_the_balance_below_zero(
        any_engine: Engine, tmp_path: Path) -> None:
    import pytest

    from sealbill.app import balances as app_balances
    from sealbill.app.context import local_actor
    from sealbill.app.errors import Invalid

    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    actor = local_actor()
    with any_engine.begin() as conn:
        balances.add_entry(conn, s.org_id, s.account_ids["A0001"], "EUR", 1500,
                           kind="manual", reason="goodwill", actor="test",
                           at=datetime.now(UTC))
    with pytest.raises(Invalid) as refused:  # more than the credit: refused, nothing written
        app_balances.refund(any_engine, actor, s.org_id, "A0001", amount="15.01",
                            reason="bank transfer")
    assert "amount" in str(refused.value.problems[0])
    with pytest.raises(Invalid):  # no credit at all
        app_balances.refund(any_engine, actor, s.org_id, "A0002", amount="1.00",
                            reason="bank transfer")
    done = app_balances.refund(any_engine, actor, s.org_id, "A0001", amount="10.00",
                               reason="bank transfer")
    assert (done["refunded_minor"], done["balance_minor"]) == (1000, 500)
    with any_engine.begin() as conn:
        history = balances.history(conn, s.org_id, s.account_ids["A0001"])
        assert [(e["kind"], e["amount_minor"]) for e in history] == [
            ("manual", 1500), ("refund", -1000)]
    # the next invoice takes only what is left
    run = bill_period(any_engine, s.org_id, "2026-11", actor="t").run_id or 0
    done_ids = finalize_run(any_engine, s.org_id, run, issue_date=date(2026, 11, 1))
    with any_engine.begin() as conn:
        november = {inv.account_reference: inv for inv in
                    (load_invoice(conn, s.org_id, i) for i, _ in done_ids)}
        assert november["A0001"].prepaid_minor == 500
        assert balances.balances(conn, s.org_id, [s.account_ids["A0001"]]) == {}


def test_accounts_refund_from_the_command_line(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path) -> None:
    s = build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path, render=False)
    sqlite_engine.dispose()
    cli = [sys.executable, "-m", "sealbill", "accounts"]
    common = ["--org", s.org_slug, "--db", sqlite_url, "--json"]
    subprocess.run([*cli, "credit", "A0001", "--amount", "5.00", "--reason", "late", *common],
                   check=True, capture_output=True, timeout=60)
    too_much = subprocess.run([*cli, "refund", "A0001", "5.01", "--reason", "transfer",
                               *common], capture_output=True, text=True, timeout=60)
    assert too_much.returncode == 2 and "below zero" in too_much.stdout + too_much.stderr
    done = subprocess.run([*cli, "refund", "A0001", "2.00", "--reason", "transfer", *common],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["balance_minor"] == 300
    shown = json.loads(subprocess.run([*cli, "balance", "A0001", *common],
                                      capture_output=True, text=True, timeout=60).stdout)
    assert shown["balance_minor"] == {"EUR": 300}
    assert [(e["kind"], e["amount_minor"]) for e in shown["history"]] == [
        ("manual", 500), ("refund", -200)]
