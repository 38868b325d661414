"""The accounts import writes a chunk of accounts at a time (store/parties/bulk.py): the rows,
seals and contact history it leaves are those of the one-by-one writers, on SQLite and
PostgreSQL — an existing contact reused, one address on several accounts, one contact in two
roles of an account, unverified roles, chunks smaller than the file."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.pipeline.parties.accounts_import import import_accounts
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store import db as store_db
from sealbill.store.parties import bulk, contact_log, seals
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts, contact_events, contact_links, contacts
from tests.support.scenario import account_records, organization


def _records() -> list[dict[str, Any]]:
    records = account_records(7)
    accountant = {"email": "compta@cabinet-expert.example", "name": "Cabinet",
                  "role": "billing", "verified": {"by": "ops", "reason": "mandate on file"}}
    for index in (0, 3, 6):  # one address receiving for three accounts
        records[index]["contacts"].append(dict(accountant))
    records[1]["contacts"].append({"email": "Admin@Client2.EXAMPLE", "role": "admin"})
    records[2]["contacts"].append({"email": records[2]["contacts"][0]["email"],
                                   "role": "technical"})  # one contact, two roles
    records[4]["contacts"].append({"email": "known@client5.example", "role": "billing"})
    return records


def _one_by_one(conn: Connection, org_id: int, records: list[dict[str, Any]]) -> None:
    """The writers the import called before, record after record."""
    for record in records:
        values = {k: v for k, v in record.items() if k != "contacts"}
        account_id = parties.create_account(conn, org_id, **values)
        for contact in record["contacts"]:
            contact_id = parties.add_contact(conn, org_id, contact["email"],
                                             name=contact.get("name", ""), actor="test")
            link_id = parties.link_contact(conn, org_id, contact_id, account_id,
                                           contact.get("role", "billing"), actor="test")
            if contact.get("verified"):
                verified = contact["verified"]
                parties.set_link_status(conn, org_id, link_id, "verified",
                                        actor=verified["by"], method="operator",
                                        reason=verified["reason"])


def _state(conn: Connection, org_id: int) -> dict[str, Any]:
    """What the rows say, without ids and instants: contacts, links, each contact's history."""
    refs = dict(conn.execute(sa.select(accounts.c.id, accounts.c.reference).where(
        accounts.c.organization_id == org_id)).all())
    emails = dict(conn.execute(sa.select(contacts.c.id, contacts.c.email).where(
        contacts.c.organization_id == org_id)).all())
    names = sorted(conn.execute(sa.select(contacts.c.email, contacts.c.name).where(
        contacts.c.organization_id == org_id)).all())
    links = sorted(
        (emails[r.contact_id], refs[r.account_id], r.role, r.status, r.status_changed_by,
         r.verification_method, r.verified_email, r.reason, r.verified_at is not None)
        for r in conn.execute(sa.select(contact_links).where(
            contact_links.c.organization_id == org_id)))
    history: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in conn.execute(sa.select(contact_events).where(
            contact_events.c.organization_id == org_id).order_by(contact_events.c.seq)):
        history[emails[r.contact_id]].append((
            r.event, refs.get(r.account_id), r.role, r.actor, r.method, r.reason,
            r.old_value, r.new_value))
    recipients = {refs[a]: sorted(emails[r.contact_id] for r in
                                  parties.verified_billing_recipients(conn, org_id, a))
                  for a in refs}
    return {"names": names, "links": links, "history": dict(history),
            "recipients": recipients}


def _org(conn: Connection, slug: str, records: list[dict[str, Any]]) -> int:
    org_id = create_org(conn, organization(slug, records))
    known = parties.add_contact(conn, org_id, "known@client5.example", name="Known",
                                actor="test")
    assert known
    return org_id


@pytest.mark.parametrize("chunk", [2, 500])
def test_the_import_leaves_the_rows_and_history_of_the_one_by_one_writers(
        any_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        chunk: int) -> None:
    monkeypatch.setattr(bulk, "CHUNK", chunk)
    records = _records()
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with any_engine.begin() as conn:
        imported = _org(conn, "bulk", records)
        counts = import_accounts(conn, imported, path, actor="test")
        reference = _org(conn, "one-by-one", records)
        _one_by_one(conn, reference, records)
    assert counts == {"accounts": 7, "contacts": 13, "verified": 10}
    with any_engine.begin() as conn:
        got, expected = _state(conn, imported), _state(conn, reference)
        assert got == expected
        assert got["recipients"]["A0001"] == ["billing1@client1.example",
                                              "compta@cabinet-expert.example"]
        # every row sealed over its content, the history a valid chain
        assert [p for p in seals.audit(conn, imported)] == []
        assert contact_log.verify(conn, imported).problems == []


def _estimated_rows(conn: Connection, sql: str, **params: Any) -> float:
    plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {sql}"), params).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


def test_a_large_import_on_postgresql_leaves_statistics_the_planner_can_use(
        pg_engine: Engine, tmp_path: Path) -> None:
    """Planned on the statistics of empty tables, the guard walked every contact of the
    organization for each message (O(n^2) a run): a large import refreshes them itself."""
    records = account_records(1000)
    for index, record in enumerate(records):
        record["contacts"][0]["email"] = f"billing{index}@client{index % 100 + 1}.example"
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with pg_engine.begin() as conn:
        org_id = _org(conn, "large", records[:100])
        import_accounts(conn, org_id, path, actor="test")
    with pg_engine.begin() as conn:
        for table in ("contacts", "contact_links", "accounts"):
            estimate = _estimated_rows(
                conn, f"SELECT id FROM {table} WHERE organization_id = :org", org=org_id)
            assert estimate > 500, (table, estimate)  # 1,000 (+1) rows are there


def test_a_long_import_refreshes_the_statistics_as_it_doubles_and_at_its_end(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own later chunks read the contacts that exist already: planned for empty tables,
    each read walked every contact of the organization (O(n^2) over the import)."""
    monkeypatch.setattr(bulk, "CHUNK", 2)
    monkeypatch.setattr(store_db, "ANALYZE_FROM_ROWS", 2)
    analyzed: list[str] = []

    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("ANALYZE"):
            analyzed.append(statement)

    records = _records()
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    sa.event.listen(pg_engine, "before_cursor_execute", _seen)
    with pg_engine.begin() as conn:
        import_accounts(conn, _org(conn, "doubling", records), path, actor="test")
    # 7 accounts by 2: after 2 and 4 (doubled), not 6, and at the end (7)
    assert len(analyzed) == 3
    assert "contacts" in analyzed[0] and "contact_links" in analyzed[0]
