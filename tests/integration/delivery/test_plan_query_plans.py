"""The plan stage's reads find their rows by the plan's, the accounts' or the contacts' own
indexes on SQLite, never by walking the organization's rows.

SQLite keeps no statistics here (nothing runs ANALYZE): for ``organization_id = ? AND
contact_id IN (...)`` it took the organization's index of ``contact_links`` and read every
link of the organization for each group of 1,000 accounts the judge read (quadratic in the
accounts: 20 ms a group at 20,000 accounts, 3 ms by the contacts' index); the plan's counts
and canary marks walked every envelope of every plan of the organization; the approval's
chunks in id order sorted the rest of the plan for each chunk. Each statement is explained
as it runs, in its own transaction (the fan-in's temporary table exists only there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.delivery import test_plan_chunks as by_chunks
from tests.integration.delivery.conftest import World
from tests.integration.delivery.test_plan_chunks import busy  # noqa: F401 - pytest fixture

BIG_TABLES = ("contact_links", "contacts", "contact_events", "delivery_envelopes", "outbox",
              "invoices", "documents")


@contextmanager
def _explained(engine: sa.Engine) -> Iterator[list[tuple[str, list[str]]]]:
    """Each statement run on ``engine`` meanwhile, with SQLite's plan for it."""
    seen: list[tuple[str, list[str]]] = []

    def explain(_conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any,
                executemany: bool) -> None:
        if executemany or not statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            return
        steps = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        seen.append((statement, [str(row[3]) for row in steps]))

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)


@pytest.mark.parametrize("busy", ["sqlite"], indirect=True)
def test_planning_and_approving_never_walk_the_organizations_rows(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    by_chunks._chunks(monkeypatch, 2)
    with _explained(busy.engine) as seen:
        assert busy.plan(policy=by_chunks.SMALL).verdict == "hold"
        busy.approve()
    assert any("contact_links" in statement for statement, _ in seen)
    for statement, steps in seen:
        for step in steps:
            if any(f"{table} USING INDEX ix_{table}_organization_id" in step
                   for table in BIG_TABLES):
                pytest.fail(f"{step}\n  in {statement}")
            assert not step.startswith(tuple(f"SCAN {table}" for table in BIG_TABLES)), (
                step, statement)


@pytest.mark.parametrize("busy", ["sqlite"], indirect=True)
def test_the_approval_reads_its_chunks_in_index_order(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """No chunk of the approval sorts what is left of the plan to find its first rows."""
    by_chunks._chunks(monkeypatch, 2)
    busy.plan(policy=by_chunks.SMALL)
    with _explained(busy.engine) as seen:
        busy.approve()
    chunks = [steps for statement, steps in seen
              if "delivery_envelopes.invoice_id >" in statement]
    assert len(chunks) >= 5  # nine envelopes, two a chunk, and the empty read that ends
    for steps in chunks:
        assert not [step for step in steps if "TEMP B-TREE FOR ORDER BY" in step], steps
