"""The statements a send runs for each message read by key, never the organization's history.

SQLite keeps no statistics here: for ``organization_id = ? AND contact_id IN (...)`` on the
contact events it chose the (organization, seq) index and walked every event of the
organization for every message — 20 ms a message at 10,000 events, growing with the
organization, so a 100,000-account run would have cost hours. The plans are read back from
SQLite for the seal rule's reads (``store.seal_facts``), 1 to 3 recipients.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from sealbill.store.delivery import seal_facts


@pytest.mark.parametrize("recipients", [1, 2, 3])
def test_the_seal_evidence_reads_use_the_contact_indexes(sqlite_engine: Engine,
                                                         recipients: int) -> None:
    params = {"org": 1, "account": 1, **{f"c{i}": i + 1 for i in range(recipients)}}
    with sqlite_engine.connect() as conn:
        steps = []
        for statement in seal_facts._per_contact(recipients):
            compiled = statement._compiled(conn.dialect)
            bound = statement._params(compiled, params)
            steps += [str(row[3]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + compiled.sql, bound)]
    assert any("ix_contact_events_contact_id" in s or "ix_contact_events_account_id" in s
               for s in steps), steps
    for step in steps:
        assert "organization_id=?" not in step or "contacts" in step, step
        assert not step.startswith("SCAN contact"), step
