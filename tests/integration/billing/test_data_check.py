"""check data reads what a raw write stored and names each value the boundary would refuse,
on both databases; nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.pipeline.data_check import check_stored_data
from sealbill.store.billing import catalog
from sealbill.store.schema import accounts, contacts, usage_events
from tests.support.scenario import build_scenario


def test_stored_values_the_boundary_would_refuse_are_named(any_engine: Engine,
                                                            tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        assert check_stored_data(conn, s.org_id) == []
        catalog.add_metric(conn, s.org_id, "api_calls", "API calls", "sum")
        conn.execute(sa.update(accounts).where(accounts.c.reference == "A0001")
                     .values(city="Pari\u200bs", name="Cafe\u0301"))
        conn.execute(sa.update(contacts).where(contacts.c.email.like("billing2@%"))
                     .values(name="4111 1111 1111 1111"))
        account_id = conn.execute(sa.select(accounts.c.id)).scalars().first()
        at = datetime(2026, 10, 1, tzinfo=UTC)
        conn.execute(sa.insert(usage_events), [
            {"organization_id": s.org_id, "account_id": account_id, "event_id": event_id,
             "metric_code": "api_calls", "occurred_at": at, "value": value}
            for event_id, value in (("big", "9" * 38), ("none", None), ("ok", "3"))])
        before = conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar()
        found = {(f.table, f.record, f.field): f.problem
                 for f in check_stored_data(conn, s.org_id)}
        after = conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar()
    assert set(found) == {("account", "'A0001'", "city"), ("account", "'A0001'", "name"),
                          ("contact", "'billing2@client2.example'", "name"),
                          ("usage_events", "'big'", "value"),
                          ("usage_events", "'none'", "value")}
    assert "U+200B" in found[("account", "'A0001'", "city")]
    assert "NFC" in found[("account", "'A0001'", "name")]
    assert before == after
