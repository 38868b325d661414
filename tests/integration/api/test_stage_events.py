"""A pipeline stage's webhooks and audit entry commit with its state change or not at all:
a fault while writing them (a trigger refusing the insert stands in for a crash between the
two) leaves the change undone, where it used to commit the change and lose the event.
Finalizing numbers invoices a chunk per transaction (each chunk with its
``invoice.finalized`` events) and audits in the transaction that marks the run finalized."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import runs, webhooks
from sealbill.app.context import local_actor
from sealbill.store.schema import audit_log, billing_runs, invoices, webhook_messages
from tests.integration.api.world import Org, build_org

ROOT = local_actor()


def _refuse_inserts(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER {table}_down BEFORE INSERT ON {table} "
                             "BEGIN SELECT RAISE(ABORT, 'down'); END")


def _restore(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {table}_down")


def _new_run(engine: Engine, org: Org) -> tuple[str, int]:
    run = runs.start(engine, ROOT, org.org_id, "2026-12")["run_id"]
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(billing_runs.c.id).where(
            billing_runs.c.period == "2026-12",
            billing_runs.c.organization_id == org.org_id)).scalar_one())
    return run, run_id


def _state(engine: Engine, run_id: int, run: str = ""
           ) -> tuple[str, list[str | None], list[str], list[str]]:
    with engine.begin() as conn:
        status = conn.execute(sa.select(billing_runs.c.status)
                              .where(billing_runs.c.id == run_id)).scalar_one()
        numbers = list(conn.execute(sa.select(invoices.c.number)
                                    .where(invoices.c.run_id == run_id)).scalars())
        events = list(conn.execute(sa.select(webhook_messages.c.event_type)).scalars())
        actions = list(conn.execute(sa.select(audit_log.c.action)
                                    .where(audit_log.c.action == "run.finalize",
                                           audit_log.c.object_id == run)).scalars())
    return status, numbers, events, actions


@pytest.mark.parametrize("table", ["webhook_messages", "audit_log"])
def test_finalizing_commits_its_webhooks_and_audit_entry_or_nothing(sqlite_engine: Engine,
                                                                   table: str) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    webhooks.add_endpoint(sqlite_engine, ROOT, org.org_id, "https://93.184.216.34/h",
                          ["invoice.finalized"])
    run, run_id = _new_run(sqlite_engine, org)
    _refuse_inserts(sqlite_engine, table)
    with pytest.raises(sa.exc.IntegrityError, match="down"):
        runs.finalize(sqlite_engine, ROOT, org.org_id, run)
    status, numbers, events, actions = _state(sqlite_engine, run_id, run)
    if table == "webhook_messages":  # no invoice numbered without its event
        assert (status, numbers, events, actions) == ("drafted", [None], [], [])
    else:  # numbered with its event (a chunk), but the run is not finalized unaudited
        assert (status, events, actions) == ("drafted", ["invoice.finalized"], [])
    _restore(sqlite_engine, table)
    runs.finalize(sqlite_engine, ROOT, org.org_id, run)
    status, numbers, events, actions = _state(sqlite_engine, run_id, run)
    assert (status, events, actions) == ("finalized", ["invoice.finalized"], ["run.finalize"])
    assert numbers[0] is not None
    runs.finalize(sqlite_engine, ROOT, org.org_id, run)  # a rerun: audited, nothing queued
    assert _state(sqlite_engine, run_id, run)[2:] == (["invoice.finalized"],
                                                 ["run.finalize", "run.finalize"])


def test_a_held_plan_and_its_run_held_webhook_commit_together(sqlite_engine: Engine,
                                                              tmp_path: object,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path))
    org = build_org(sqlite_engine, "alpha", 1)
    webhooks.add_endpoint(sqlite_engine, ROOT, org.org_id, "https://93.184.216.34/h",
                          ["run.held"])
    run = org.ids["run_id"]
    runs.render(sqlite_engine, ROOT, org.org_id, run)
    _refuse_inserts(sqlite_engine, "webhook_messages")
    with pytest.raises(sa.exc.IntegrityError, match="down"):
        runs.plan(sqlite_engine, ROOT, org.org_id, run, policy={"first_cycle": "hold"})
    assert runs.show(sqlite_engine, ROOT, org.org_id, run)["status"] != "held"
    _restore(sqlite_engine, "webhook_messages")
    planned = runs.plan(sqlite_engine, ROOT, org.org_id, run, policy={"first_cycle": "hold"})
    assert planned["status"] == "held"
    with sqlite_engine.begin() as conn:
        held = conn.execute(sa.select(webhook_messages.c.payload)).scalars().all()
        entry = conn.execute(sa.select(audit_log.c.after).where(
            audit_log.c.action == "run.plan")).scalar_one()
    assert [m["type"] for m in held] == ["run.held"] and held[0]["data"]["run_id"] == run
    assert entry["status"] == "held"  # written by the plan's own transaction
