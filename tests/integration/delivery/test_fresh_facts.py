"""The guard's fresh read in two statements says what the original one-fact-per-query read said.

``reference_fresh_facts`` below is the read as it was (one statement per fact and per
recipient, through ``parties.verified_billing_recipients``). The batched read must give the
same ``Fresh`` for every outbox row and for tampered rows (recipients of another account, an
unknown contact, a bounced one, a pending link, an accountant on several accounts, claims
already taken in the run, a missing invoice, a missing outbox row), on SQLite and PostgreSQL;
and on SQLite none of its statements may walk the whole run or organization (the plans).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.guard import DEFAULT_RECIPIENT_CAP, Fresh
from sealbill.pipeline.delivery import compose
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import policy_facts, seal_facts
from sealbill.store.delivery.plans import TEXT_KINDS
from sealbill.store.parties import records as parties
from sealbill.store.schema import (
    contact_links,
    contacts,
    documents,
    invoices,
    organizations,
    outbox,
    outbox_recipients,
)
from tests.support.scenario import build_scenario


def reference_fresh_facts(conn: Connection, org_id: int, item: box.OutboxItem,
                          cap: int = DEFAULT_RECIPIENT_CAP) -> Fresh:
    """The fresh read before it was batched (verbatim but for the function name)."""
    verified = frozenset((r.contact_id, r.email) for r in
                         parties.verified_billing_recipients(conn, org_id, item.account_id))
    inv = conn.execute(sa.select(invoices.c.account_id, invoices.c.run_id, invoices.c.status,
                                 invoices.c.number, invoices.c.account_reference,
                                 invoices.c.buyer_snapshot)
                       .where(invoices.c.organization_id == org_id,
                              invoices.c.id == item.invoice_id)).first()
    docs = {("text" if kind in TEXT_KINDS else kind): sha for kind, sha in conn.execute(
        sa.select(documents.c.kind, documents.c.sha256).where(
            documents.c.organization_id == org_id, documents.c.invoice_id == item.invoice_id))}
    archive = conn.execute(sa.select(organizations.c.archive_email).where(
        organizations.c.id == org_id)).scalar()
    message_id = conn.execute(sa.select(outbox.c.message_id).where(
        outbox.c.organization_id == org_id, outbox.c.id == item.outbox_id)).scalar()
    pair_claims, claimed, explained = {}, {}, {}
    for contact_id, _ in item.recipients:
        pair_claims[contact_id] = int(conn.execute(
            sa.select(sa.func.count()).select_from(outbox_recipients).where(
                outbox_recipients.c.run_id == item.run_id,
                outbox_recipients.c.invoice_id == item.invoice_id,
                outbox_recipients.c.contact_id == contact_id,
                outbox_recipients.c.outbox_id != item.outbox_id)).scalar_one())
        claimed[contact_id] = int(conn.execute(
            sa.select(sa.func.count(sa.distinct(outbox_recipients.c.invoice_id))).where(
                outbox_recipients.c.run_id == item.run_id,
                outbox_recipients.c.contact_id == contact_id,
                outbox_recipients.c.invoice_id != item.invoice_id)).scalar_one())
        explained[contact_id] = int(conn.execute(
            sa.select(sa.func.count()).select_from(invoices).join(
                contact_links, contact_links.c.account_id == invoices.c.account_id).where(
                invoices.c.run_id == item.run_id, invoices.c.status == "finalized",
                contact_links.c.organization_id == org_id,
                contact_links.c.contact_id == contact_id, contact_links.c.role == "billing",
                contact_links.c.status == "verified")).scalar_one())
    buyer = (inv.buyer_snapshot or {}) if inv is not None else {}
    return Fresh(
        verified_contacts=verified,
        invoice_account_id=None if inv is None else int(inv.account_id),
        invoice_run_id=None if inv is None or inv.run_id is None else int(inv.run_id),
        invoice_status=None if inv is None else str(inv.status),
        invoice_number=None if inv is None else inv.number,
        account_reference=None if inv is None else inv.account_reference,
        buyer_name=buyer.get("name"),
        pdf_sha256=docs.get("pdf"), text_sha256=docs.get("text"), html_sha256=docs.get("html"),
        archive_email=archive, message_id=message_id,
        pair_claims=pair_claims, claimed_invoices=claimed, explained_invoices=explained,
        cap=cap, xml_sha256=docs.get("xml"))


def _tangled(engine: Engine, tmp_path: Path) -> tuple[int, list[box.OutboxItem]]:
    """A planned run of 6 accounts, then contacts tangled in every way the guard cares about,
    and some claims already taken."""
    scenario = build_scenario(engine, accounts=6, files_dir=tmp_path / "files")
    plan_run(engine, scenario.org_id, scenario.run_id, actor="planner")
    org, ids = scenario.org_id, scenario.account_ids
    with engine.begin() as conn:
        accountant = parties.add_contact(conn, org, "books@accountant.example", actor="ops")
        for ref in ("A0001", "A0002", "A0003"):
            link = parties.link_contact(conn, org, accountant, ids[ref], "billing", actor="ops")
            parties.set_link_status(conn, org, link, "verified", actor="ops",
                                    method="operator", reason="accountant")
        pending = parties.add_contact(conn, org, "pending@client4.example", actor="ops")
        parties.link_contact(conn, org, pending, ids["A0004"], "billing", actor="ops")
        bounced = parties.add_contact(conn, org, "gone@client5.example", actor="ops")
        link = parties.link_contact(conn, org, bounced, ids["A0005"], "billing", actor="ops")
        parties.set_link_status(conn, org, link, "verified", actor="ops", method="operator",
                                reason="x")
        conn.execute(sa.update(contacts).where(contacts.c.id == bounced)
                     .values(bounced_at=parties.now()))
        admin = parties.add_contact(conn, org, "admin@client6.example", actor="ops")
        link = parties.link_contact(conn, org, admin, ids["A0006"], "admin", actor="ops")
        parties.set_link_status(conn, org, link, "verified", actor="ops", method="operator",
                                reason="x")
        items = box.items(conn, org, scenario.run_id, statuses=box.RETRYABLE)
        for item in items[:3]:  # claims taken by messages already on their way
            box.record_claims(conn, org, replace(item, recipients=(
                *item.recipients, (accountant, "books@accountant.example"))))
    extra = [(accountant, "books@accountant.example"), (pending, "pending@client4.example"),
             (bounced, "gone@client5.example"), (admin, "admin@client6.example"),
             (999_999, "nobody@nowhere.example")]
    tampered = [replace(items[0], recipients=(*items[0].recipients, *extra)),
                replace(items[1], recipients=items[4].recipients),
                replace(items[2], recipients=items[2].recipients * 2),
                replace(items[3], invoice_id=items[0].invoice_id),
                replace(items[4], invoice_id=999_999),
                replace(items[5], outbox_id=999_999),
                replace(items[5], account_id=items[0].account_id),
                replace(items[5], run_id=999_999),
                replace(items[5], recipients=())]
    return org, items + tampered


def _compare(engine: Engine, tmp_path: Path) -> None:
    org, items = _tangled(engine, tmp_path)
    with engine.begin() as conn:
        for item in items:
            assert box.fresh_facts(conn, org, item, 7) == reference_fresh_facts(
                conn, org, item, 7), item
    with engine.begin() as conn:
        assert box.fresh_facts(conn, org + 1000, items[0]) == reference_fresh_facts(
            conn, org + 1000, items[0])


def test_same_facts_as_the_original_read_sqlite(sqlite_engine: Engine, tmp_path: Path) -> None:
    _compare(sqlite_engine, tmp_path)


@pytest.mark.postgres
def test_same_facts_as_the_original_read_postgres(pg_engine: Engine, tmp_path: Path) -> None:
    _compare(pg_engine, tmp_path)


def _plan_of(conn: Connection, statement: Any, params: dict[str, Any]) -> list[str]:
    sql = str(statement.params(**params).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    return [str(row[3]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]


def test_no_per_message_read_walks_the_whole_run_on_sqlite(sqlite_engine: Engine) -> None:
    """Without statistics SQLite would pick the ``run_id``/``organization_id`` indexes: each
    message would read every claim, invoice and link of the run (16 messages/s at 10,000)."""
    steps = []
    for ids in ([5], [5, 6]):  # one recipient (IN (x) reads as x = ?) and several
        params = {"org": 1, "outbox": 5, "invoice": 5, "run": 1, "account": 5,
                  "contact_ids": ids, **{f"c{i}": cid for i, cid in enumerate(ids)}}
        with sqlite_engine.connect() as conn:
            steps += (_plan_of(conn, box._FACTS_ROW, params)
                      + _plan_of(conn, box.contact_rows(len(ids)).statement, params)
                      + _plan_of(conn, compose._DOCUMENTS.statement, params)
                      + _plan_of(conn, compose._names(len(ids)).statement, params))
    searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
    assert searches and not [s for s in searches if s.startswith("SCAN")], steps
    walks = [s for s in searches if ("(run_id=?)" in s or "(organization_id=?)" in s
                                     or "ix_invoices_run_status" in s)
             # one row per organization (unique): the kill switch read with the facts
             and not s.startswith("SEARCH sending_switches")]
    assert walks == [], steps


def _compare_batch_reads(engine: Engine, tmp_path: Path) -> None:
    """A sender reads the seal rule's rows and the policy facts for its whole batch at once
    (``seal_facts.evidence_many``, ``policy_facts.read_many``): the same as one read per
    message, for the tangled rows above, a revoked link, an unknown envelope, in any order."""
    org, items = _tangled(engine, tmp_path)
    with engine.begin() as conn:
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == org, contact_links.c.role == "billing")
            .order_by(contact_links.c.id)).scalars().first()
        assert link is not None
        parties.set_link_status(conn, org, link, "revoked", actor="ops", reason="left")
    items = [*items, replace(items[1], envelope_id=999_999), replace(items[2], account_id=0)]
    for batch in (items, items[::-1], items[:1]):
        with engine.begin() as conn:
            wanted = [(i.account_id, [c for c, _ in i.recipients]) for i in batch]
            assert seal_facts.evidence_many(conn, org, wanted) == [
                seal_facts.evidence(conn, org, account, ids) for account, ids in wanted]
            assert policy_facts.read_many(conn, org, [i.envelope_id for i in batch]) == {
                i.envelope_id: policy_facts.read(conn, org, i.envelope_id) for i in batch}
    with engine.begin() as conn:  # another organization's view: nothing of this one
        assert seal_facts.evidence_many(conn, org + 1000, [(items[0].account_id, [1])]) == [
            seal_facts.evidence(conn, org + 1000, items[0].account_id, [1])]
        assert seal_facts.evidence_many(conn, org, []) == []


def test_batch_reads_say_what_one_read_per_message_says_sqlite(sqlite_engine: Engine,
                                                               tmp_path: Path) -> None:
    _compare_batch_reads(sqlite_engine, tmp_path)


@pytest.mark.postgres
def test_batch_reads_say_what_one_read_per_message_says_postgres(pg_engine: Engine,
                                                                 tmp_path: Path) -> None:
    _compare_batch_reads(pg_engine, tmp_path)


class _Selects:
    """The SELECT statements run on a connection while listening, and their query plans."""

    def __init__(self) -> None:
        self.captured: list[tuple[str, Any]] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
                 *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.captured.append((statement, parameters))

    def plans(self, conn: Connection) -> list[str]:
        return [str(row[3]) for statement, parameters in self.captured
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]


def test_no_batch_read_walks_the_whole_organization_on_sqlite(sqlite_engine: Engine) -> None:
    """The batch's seal and policy reads (prepared, run on the DBAPI cursor) go by contact,
    account and envelope too."""
    params = {"org": 1, "contacts": [5, 6, 7], "accounts": [5, 6], "envelopes": [5, 6]}
    reads = [seal_facts._CONTACTS, seal_facts._LINKS, seal_facts._EVENTS,
             policy_facts._READ_MANY]
    with sqlite_engine.begin() as conn:
        plans = [read.sql_and_params(conn, params) for read in reads]
        steps = [str(row[3]) for sql, bound in plans
                 for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, bound)]
    searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
    assert searches, steps
    # a SCAN only of the ranked subquery's own rows (the latest event per link) and of the
    # id lists (``json_each``)
    assert [s for s in searches if s.startswith("SCAN")
            and not s.startswith(("SCAN (subquery", "SCAN anon_"))] == [], steps
    assert [s for s in searches if "(organization_id=?)" in s or "(run_id=?)" in s] == [], steps


def _one_by_one(conn: Connection, org: int, item: box.OutboxItem) -> Any:
    try:
        return compose.gather(conn, org, item)
    except Exception as exc:
        return (type(exc), str(exc))


def _compare_gathers(engine: Engine, tmp_path: Path) -> None:
    """A sender gathers its batch's invoices, documents and names with one statement each
    (``compose.gather_many``): the same as one gather per message — a missing invoice or
    document its own error in its place, the others unaffected, in any order."""
    org, items = _tangled(engine, tmp_path)
    with engine.begin() as conn:  # an invoice whose HTML is gone: that message only fails
        doc = conn.execute(sa.select(documents.c.id).where(
            documents.c.invoice_id == items[1].invoice_id, documents.c.kind == "html")
        ).scalar_one()
        conn.execute(sa.delete(documents).where(documents.c.id == doc))
    for batch in (items, items[::-1], items[:1], []):
        with engine.begin() as conn:
            got = [g if not isinstance(g, Exception) else (type(g), str(g))
                   for g in compose.gather_many(conn, org, batch)]
            assert got == [_one_by_one(conn, org, item) for item in batch]
    with engine.begin() as conn:
        errors = [g for g in compose.gather_many(conn, org, items) if isinstance(g, Exception)]
        assert {type(e).__name__ for e in errors} >= {"DocumentMismatch", "NotFound"}


def test_batch_gather_says_what_one_gather_per_message_says_sqlite(sqlite_engine: Engine,
                                                                   tmp_path: Path) -> None:
    _compare_gathers(sqlite_engine, tmp_path)


@pytest.mark.postgres
def test_batch_gather_says_what_one_gather_per_message_says_postgres(pg_engine: Engine,
                                                                     tmp_path: Path) -> None:
    _compare_gathers(pg_engine, tmp_path)


def test_paging_and_batch_gather_walk_no_index_of_the_run_on_sqlite(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    """A sender's page of rows walks the primary key from where the last page ended, and its
    batch gather goes by invoice and contact: neither reads every row of the run or
    organization."""
    scenario = build_scenario(sqlite_engine, accounts=3, files_dir=tmp_path / "files")
    plan_run(sqlite_engine, scenario.org_id, scenario.run_id, actor="planner")
    selects = _Selects()
    with sqlite_engine.begin() as conn:
        sa.event.listen(conn, "before_cursor_execute", selects)
        rows = box.page(conn, scenario.org_id, scenario.run_id, statuses=box.RETRYABLE,
                        after=0, limit=2, part=(0, 1))
        compose.gather_many(conn, scenario.org_id, rows)
        sa.event.remove(conn, "before_cursor_execute", selects)
        steps = selects.plans(conn)
    assert len(rows) == 2
    searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
    assert searches and [s for s in searches if s.startswith("SCAN")] == [], steps
    assert [s for s in searches if "(organization_id=?)" in s or "(run_id=?" in s] == [], steps
