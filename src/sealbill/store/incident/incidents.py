"""Incidents, their timeline and the operator's link corrections: every statement tenant-scoped.

Invariants:
- every function takes the ``org_id`` it acts for and its statements name it: an incident,
  event or correction of another organization is "not found", never read or changed;
- an incident's ``record`` changes only through :func:`update_record`, which appends the
  matching ``incident_events`` row in the same transaction: the timeline explains every change;
- ``incident_events`` and ``link_corrections`` are append-only (no update, no delete here);
- ``aware_at`` is fixed at opening: the 72-hour clock cannot be restarted by editing;
- a correction names a contact and an account of the same organization.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store import stage_events
from sealbill.store.db import inserted_id, is_postgres
from sealbill.store.parties.records import NotFound
from sealbill.store.schema import (
    accounts,
    contacts,
    incident_events,
    incidents,
    link_corrections,
)

STATUSES = ("open", "notified", "closed")


def now() -> datetime:
    return datetime.now(UTC)


def _mapping(row: sa.Row[Any]) -> Mapping[str, Any]:
    # Column keys are strings in every table here; SQLAlchemy types them more broadly.
    return cast(Mapping[str, Any], row._mapping)



def empty_record() -> dict[str, Any]:
    """The shape of ``incidents.record``; every section exists from the start."""
    return {
        "facts": {"description": None, "cause": None, "detection": None, "breach_start": None,
                  "breach_end": None, "nature": [], "consequences": []},
        "measures": {"taken": [], "proposed": []},
        "notification": {"type": "initial", "notified_at": None, "delay_reason": None},
        "severity": None,
        "decision": None,
        "containment": None,
        "rotations": [],
        "revocations": [],
    }


def open_incident(conn: Connection, org_id: int, *, title: str, aware_at: datetime,
                  scope: Mapping[str, Any], actor: str, at: datetime | None = None) -> int:
    """Create the incident (status ``open``) and its ``opened`` event."""
    if not title.strip():
        raise ValueError("an incident needs a title")
    at = at or now()
    incident_id = inserted_id(conn.execute(
        sa.insert(incidents).values(
            organization_id=org_id, title=title.strip(), aware_at=aware_at, opened_at=at,
            opened_by=actor, scope=dict(scope), status="open", record=empty_record())))
    append_event(conn, org_id, incident_id, "opened",
                 {"title": title.strip(), "aware_at": aware_at.isoformat(),
                  "scope": dict(scope)}, actor=actor, at=at)
    return incident_id


def incident(conn: Connection, org_id: int, incident_id: int, *,
             for_update: bool = False) -> Mapping[str, Any]:
    query = sa.select(incidents).where(incidents.c.organization_id == org_id,
                                       incidents.c.id == incident_id)
    if for_update and is_postgres(conn):
        # Two operators updating the same record must not lose each other's change.
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return _mapping(row)


def all_incidents(conn: Connection, org_id: int) -> list[Mapping[str, Any]]:
    rows = conn.execute(sa.select(incidents).where(incidents.c.organization_id == org_id)
                        .order_by(incidents.c.id))
    return [_mapping(row) for row in rows]


def append_event(conn: Connection, org_id: int, incident_id: int, event: str,
                 detail: Mapping[str, Any], *, actor: str, at: datetime | None = None) -> None:
    conn.execute(
        sa.insert(incident_events).values(
            organization_id=org_id, incident_id=incident_id, event=event, detail=dict(detail),
            actor=actor, at=at or now(),
        )
    )
    # the act's audit entry (application layer) commits with its timeline event
    stage_events.publish(conn, org_id, stage_events.INCIDENT_EVENT,
                         {"incident_id": incident_id, "event": event, "detail": dict(detail)})


def events(conn: Connection, org_id: int, incident_id: int) -> list[Mapping[str, Any]]:
    rows = conn.execute(
        sa.select(incident_events)
        .where(incident_events.c.organization_id == org_id,
               incident_events.c.incident_id == incident_id)
        .order_by(incident_events.c.at, incident_events.c.id)
    )
    return [_mapping(row) for row in rows]


def update_record(conn: Connection, org_id: int, incident_id: int,
                  sections: Mapping[str, Any], *, event: str, actor: str,
                  detail: Mapping[str, Any] | None = None, status: str | None = None,
                  at: datetime | None = None) -> dict[str, Any]:
    """Replace whole sections of the record, append ``event``; return the new record."""
    current = incident(conn, org_id, incident_id, for_update=True)
    record = copy.deepcopy(dict(current["record"]))
    unknown = set(sections) - set(empty_record())
    if unknown:
        raise ValueError(f"unknown record sections: {sorted(unknown)}")
    record.update(copy.deepcopy(dict(sections)))
    values: dict[str, Any] = {"record": record}
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        values["status"] = status
        if status == "closed":
            values["closed_at"] = at or now()
    conn.execute(sa.update(incidents)
                 .where(incidents.c.organization_id == org_id, incidents.c.id == incident_id)
                 .values(**values))
    append_event(conn, org_id, incident_id, event,
                 dict(detail) if detail is not None else dict(sections), actor=actor, at=at)
    return record


def update_scope(conn: Connection, org_id: int, incident_id: int, scope: Mapping[str, Any], *,
                 actor: str, reason: str) -> None:
    """Change what the blast radius looks at; the previous scope stays in the timeline."""
    previous = incident(conn, org_id, incident_id, for_update=True)["scope"]
    conn.execute(sa.update(incidents)
                 .where(incidents.c.organization_id == org_id, incidents.c.id == incident_id)
                 .values(scope=dict(scope)))
    append_event(conn, org_id, incident_id, "scope_changed",
                 {"from": previous, "to": dict(scope), "reason": reason}, actor=actor)


def add_correction(conn: Connection, org_id: int, *, contact_id: int, account_id: int,
                   entitled: bool, reason: str, actor: str, incident_id: int | None = None,
                   valid_from: datetime | None = None, valid_to: datetime | None = None,
                   at: datetime | None = None) -> int:
    """Record that a contact was (not) entitled to an account's mail over [from, to)."""
    if not reason.strip():
        raise ValueError("a link correction needs a reason")
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise ValueError("a correction's end must come after its start")
    _require(conn, contacts, org_id, contact_id, "contact")
    _require(conn, accounts, org_id, account_id, "account")
    if incident_id is not None:
        incident(conn, org_id, incident_id)
    at = at or now()
    correction_id = inserted_id(conn.execute(
        sa.insert(link_corrections).values(
            organization_id=org_id, contact_id=contact_id, account_id=account_id,
            entitled=entitled, valid_from=valid_from, valid_to=valid_to,
            reason=reason.strip(), actor=actor, at=at, incident_id=incident_id)))
    if incident_id is not None:
        append_event(conn, org_id, incident_id, "link_corrected",
                     {"correction_id": correction_id, "contact_id": contact_id,
                      "account_id": account_id, "entitled": entitled, "reason": reason.strip(),
                      "valid_from": valid_from.isoformat() if valid_from else None,
                      "valid_to": valid_to.isoformat() if valid_to else None},
                     actor=actor, at=at)
    return correction_id


def _require(conn: Connection, table: sa.Table, org_id: int, row_id: int, what: str) -> None:
    found = conn.execute(sa.select(table.c.id).where(table.c.organization_id == org_id,
                                                     table.c.id == row_id)).first()
    if found is None:
        raise NotFound(f"{what} {row_id} not found")


def contact_id_for(conn: Connection, org_id: int, ref: str) -> int:
    """A contact named by id or by address, in this organization."""
    query = sa.select(contacts.c.id).where(contacts.c.organization_id == org_id)
    query = query.where(contacts.c.id == int(ref)) if ref.isdigit() else query.where(
        sa.func.lower(contacts.c.email) == ref.strip().lower())
    found = conn.execute(query).scalars().all()
    if len(found) != 1:
        raise NotFound(f"contact {ref!r} not found")
    return int(found[0])


def account_id_for(conn: Connection, org_id: int, ref: str) -> int:
    """An account named by its reference (what legal reads on the invoice) or by id."""
    by_reference = conn.execute(sa.select(accounts.c.id).where(
        accounts.c.organization_id == org_id, accounts.c.reference == ref)).scalar()
    if by_reference is not None:
        return int(by_reference)
    if ref.isdigit():
        _require(conn, accounts, org_id, int(ref), "account")
        return int(ref)
    raise NotFound(f"account {ref!r} not found")
