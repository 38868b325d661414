"""``sealbill run bill`` with one broken subscription: the others are billed, the broken one is
reported (text on stderr, ``problems`` in ``--json``) and the exit code is 1."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.schema import subscriptions
from tests.support.scenario import build_scenario


def sealbill(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db],
                          capture_output=True, text=True, timeout=120)


def test_run_bill_reports_the_account_it_could_not_bill_and_bills_the_others(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path) -> None:
    s = build_scenario(sqlite_engine, accounts=3, files_dir=tmp_path, render=False)
    with sqlite_engine.begin() as conn:
        catalog_store.add_plan(conn, s.org_id, Plan(
            "later", "Later", Interval.MONTH, "EUR", 1, date(2031, 1, 1), (
                Charge("base", ChargeModel.FLAT, "Abo", "Sub",
                       ChargeProperties(amount=Decimal(5))),)), datetime.now(UTC))
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == s.account_ids["A0003"])).scalar_one()
        catalog_store.change_plan(conn, s.org_id, sub_id, "later", date(2026, 10, 5),
                                  datetime.now(UTC))
    sqlite_engine.dispose()
    preview = sealbill(sqlite_url, "run", "bill", "--org", s.org_slug, "--period", "2026-11",
                       "--dry-run", "--json")
    assert preview.returncode == 1, preview.stderr
    previewed = json.loads(preview.stdout)
    assert previewed["ok"] is False and previewed["drafted"] == 2
    assert previewed["problems"] == [p for p in previewed["problems"] if "A0003" in p]
    assert "later" in previewed["problems"][0]
    real = sealbill(sqlite_url, "run", "bill", "--org", s.org_slug, "--period", "2026-11")
    assert real.returncode == 1
    assert "1 account(s) not billed" in real.stderr and "A0003" in real.stderr
    assert "2 drafts" in real.stdout
