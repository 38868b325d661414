"""Each change and its audit entry commit together: when the audit insert fails (a trigger
refusing it stands in for a crash between the two), the change is not kept either. Starting
a run (its drafts), rendering (each stored chunk of documents), setting a message aside or
queueing it again, and the acts on an incident — each used to commit its change first and
write its entry in a second transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import incidents, message_actions, runs
from sealbill.app.context import local_actor
from sealbill.app.errors import AppError
from sealbill.store.schema import audit_log, billing_runs, documents, invoices, outbox
from sealbill.store.schema import incidents as incident_rows
from tests.integration.api.test_stage_events import _refuse_inserts, _restore
from tests.integration.api.world import Org, build_org

ROOT = local_actor()


def _count(engine: Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(*where)).scalar_one())


def _actions(engine: Engine, action: str) -> list[dict[str, object]]:
    with engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id))]


@pytest.fixture
def org(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Org:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    return build_org(sqlite_engine, "alpha", 1)


def test_starting_a_run_keeps_no_draft_when_its_audit_entry_fails(sqlite_engine: Engine,
                                                                  org: Org) -> None:
    _refuse_inserts(sqlite_engine, "audit_log")
    with pytest.raises(sa.exc.DBAPIError):
        runs.start(sqlite_engine, ROOT, org.org_id, "2026-12")
    _restore(sqlite_engine, "audit_log")
    assert _count(sqlite_engine, billing_runs, billing_runs.c.period == "2026-12") == 0
    assert _count(sqlite_engine, invoices, invoices.c.status == "draft") == 0

    started = runs.start(sqlite_engine, ROOT, org.org_id, "2026-12")
    [entry] = _actions(sqlite_engine, "run.start")[-1:]
    assert entry["object_id"] == started["run_id"]
    assert entry["after"]["drafted"] == started["drafted"] == 1  # type: ignore[index]


def test_rendering_keeps_no_document_when_its_audit_entry_fails(sqlite_engine: Engine,
                                                                org: Org) -> None:
    run = org.ids["run_id"]
    _refuse_inserts(sqlite_engine, "audit_log")
    with pytest.raises(sa.exc.DBAPIError):
        runs.render(sqlite_engine, ROOT, org.org_id, run)
    _restore(sqlite_engine, "audit_log")
    assert _count(sqlite_engine, documents) == 0

    assert runs.render(sqlite_engine, ROOT, org.org_id, run)["rendered"] == 1
    [entry] = _actions(sqlite_engine, "run.render")
    assert entry["object_id"] == run and entry["after"] == {  # its chunk, named
        "rendered": 1, "first_number": org.refs["invoice_number"],
        "last_number": org.refs["invoice_number"]}
    assert _count(sqlite_engine, documents) > 0


def test_a_set_aside_is_not_kept_when_its_audit_entry_fails(sqlite_engine: Engine,
                                                            org: Org) -> None:
    run = org.ids["run_id"]
    runs.render(sqlite_engine, ROOT, org.org_id, run)
    runs.plan(sqlite_engine, ROOT, org.org_id, run)
    _refuse_inserts(sqlite_engine, "audit_log")
    with pytest.raises(sa.exc.DBAPIError):
        message_actions.set_aside(sqlite_engine, ROOT, org.org_id, run,
                                  org.refs["invoice_number"], "customer asked to wait")
    _restore(sqlite_engine, "audit_log")
    assert _count(sqlite_engine, outbox, outbox.c.status == "set_aside") == 0
    message_actions.set_aside(sqlite_engine, ROOT, org.org_id, run,
                              org.refs["invoice_number"], "customer asked to wait")
    assert _count(sqlite_engine, outbox, outbox.c.status == "set_aside") == 1
    assert len(_actions(sqlite_engine, "run.set_aside")) == 1


def test_closing_an_incident_is_not_kept_when_its_audit_entry_fails(sqlite_engine: Engine,
                                                                    org: Org) -> None:
    ref = org.ids["incident_id"]
    _refuse_inserts(sqlite_engine, "audit_log")
    with pytest.raises((sa.exc.DBAPIError, AppError)):
        incidents.close(sqlite_engine, ROOT, org.org_id, ref, "no exposure found")
    _restore(sqlite_engine, "audit_log")
    assert _count(sqlite_engine, incident_rows, incident_rows.c.status == "closed") == 0
    incidents.close(sqlite_engine, ROOT, org.org_id, ref, "no exposure found")
    assert _count(sqlite_engine, incident_rows, incident_rows.c.status == "closed") == 1
    [entry] = _actions(sqlite_engine, "incident.close")
    assert entry["object_id"] == ref and entry["after"]["reason"] == "no exposure found"  # type: ignore[index]
