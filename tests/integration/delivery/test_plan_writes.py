"""The plan's envelopes and outbox rows, written by the driver on SQLite, are stored as
SQLAlchemy's column types store them, and read back as written, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.store.delivery import plans as store
from sealbill.store.parties import records as parties
from sealbill.store.schema import delivery_envelopes, outbox
from tests.integration.delivery.conftest import World, make_world


@pytest.fixture(params=["sqlite", "postgresql"])
def planned(request: pytest.FixtureRequest, tmp_path: Path, smtp_server: Any,
            dkim_signer: Any) -> Iterator[tuple[World, datetime]]:
    engine = request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}"
                                     "_engine")
    world = make_world(engine, tmp_path, smtp_server, dkim_signer, accounts=5)
    with engine.begin() as conn:  # one account without a verified contact: a held message
        link = conn.execute(sa.select(parties.contact_links.c.id).where(
            parties.contact_links.c.account_id == world.scenario.account_ids["A0004"],
            parties.contact_links.c.role == "billing")
        ).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                method="operator", reason="left")
    now = datetime(2026, 12, 7, 5, 4, 3, 21, tzinfo=UTC)  # microseconds written as such
    world.plan(now=now, canary_share=0.5)
    yield world, now


def test_the_plan_rows_read_back_as_written(planned: tuple[World, datetime]) -> None:
    world, now = planned
    with world.engine.connect() as conn:
        plan = store.plan_row(conn, world.org_id, world.run_id)
        assert plan is not None
        rows = store.envelope_rows(conn, world.org_id, int(plan["id"]))
        boxes = {r.envelope_id: r for r in conn.execute(sa.select(outbox).where(
            outbox.c.organization_id == world.org_id))}
        expected = {account_id: [{"contact_id": r.contact_id, "email": r.email}
                                 for r in parties.verified_billing_recipients(
                                     conn, world.org_id, account_id)]
                    for account_id in world.scenario.account_ids.values()}
        if conn.dialect.name == "sqlite":  # the text SQLAlchemy's DateTime writes
            raw = conn.exec_driver_sql(
                "SELECT created_at FROM delivery_envelopes").scalars().all()
            assert set(raw) == {"2026-12-07 05:04:03.000021"}
            assert set(conn.exec_driver_sql("SELECT updated_at FROM outbox").scalars()) == {
                "2026-12-07 05:04:03.000021"}
    assert len(rows) == 5 and len(boxes) == 5
    assert {bool(r["is_canary"]) for r in rows} == {True, False}
    for row in rows:
        assert row["created_at"] == now
        assert row["recipients"] == expected[row["account_id"]]
        box = boxes[row["id"]]
        assert box.updated_at == now and box.attempts == 0
        assert box.message_id == row["message_id"]
        assert (box.status, box.last_error) == (
            ("queued", None) if row["recipients"] else ("held", "no verified billing contact"))
    assert [r["recipients"] for r in rows].count([]) == 1
    with world.engine.connect() as conn:  # the ids given back are the rows' own
        pairs = conn.execute(sa.select(delivery_envelopes.c.id, delivery_envelopes.c.invoice_id)
                             ).all()
    assert sorted(pairs) == sorted((r["id"], r["invoice_id"]) for r in rows)
