"""Seal the rows that entitle an address: organizations, contacts, contact links.

The store's write functions (:mod:`sealbill.store.parties.records`) call :func:`seal_row` after
every
insert or update of one of these rows, in the same transaction, so that every entry point —
CLI, import, verification, demo, a future API — seals through this one place. The keyring comes
from the connection (:func:`sealbill.keys.for_connection`).

:func:`fields_of` says which fields of a row are sealed (``domain/seals.py`` holds the
encoding); :func:`check_row` recomputes a stored row's seal; :func:`reseal_all` re-seals, after
a key rotation, only the rows whose seal verifies under a key of the keyring — a row that does
not verify keeps its bad seal and is reported, never laundered into a valid one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain import seals
from sealbill.domain.seals import Check
from sealbill.keys import for_connection
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import contact_links, contacts, organizations

TABLES: dict[str, sa.Table] = {"organization": organizations, "contact": contacts,
                               "link": contact_links}


fields_of = seals.row_fields
check_row = seals.check_row


def _read(conn: Connection, kind: str, row_id: int) -> Mapping[Any, Any]:
    table = TABLES[kind]
    row = conn.execute(sa.select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise LookupError(f"{kind} {row_id} not found")
    return row._mapping


_UPDATES = {kind: Prepared(sa.update(table).where(table.c.id == sa.bindparam("row_id"))
                          .values(seal=sa.bindparam("seal"),
                                  seal_key_id=sa.bindparam("seal_key_id")))
            for kind, table in TABLES.items()}


def seal_row(conn: Connection, kind: str, row_id: int,
             row: Mapping[Any, Any] | None = None) -> None:
    """(Re)seal one row with the active key: ``row`` is its content as the caller just wrote
    it (every sealed field), or ``None`` to read it back in this transaction."""
    content = row if row is not None else _read(conn, kind, row_id)
    seal, kid = for_connection(conn).keys.seal(kind, fields_of(kind, {**content, "id": row_id}))
    _UPDATES[kind].run(conn, {"row_id": row_id, "seal": seal, "seal_key_id": kid})


def seal_rows(conn: Connection, kind: str,
              rows: Sequence[tuple[int, Mapping[Any, Any]]]) -> None:
    """:func:`seal_row` for many rows just written (id, content), in one statement."""
    if not rows:
        return
    keys = for_connection(conn).keys
    params = []
    for row_id, content in rows:
        seal, kid = keys.seal(kind, fields_of(kind, {**content, "id": row_id}))
        params.append({"row_id": row_id, "seal": seal, "seal_key_id": kid})
    _UPDATES[kind].run_many(conn, params)


def reseal_all(conn: Connection) -> dict[str, dict[str, int]]:
    """After a rotation: rows that verify under an old key are sealed again with the active
    key; rows that do not verify are left as they are (and counted)."""
    keys = for_connection(conn).keys
    counts: dict[str, dict[str, int]] = {}
    for kind, table in TABLES.items():
        tally = {"resealed": 0, "already_active": 0, "not_valid": 0}
        for found in conn.execute(sa.select(table)).all():
            row = found._mapping
            if check_row(keys, kind, row) is not Check.VALID:
                tally["not_valid"] += 1
            elif row["seal_key_id"] == keys.active:
                tally["already_active"] += 1
            else:
                seal, kid = keys.seal(kind, fields_of(kind, row))
                conn.execute(sa.update(table).where(table.c.id == row["id"])
                             .values(seal=seal, seal_key_id=kid))
                tally["resealed"] += 1
        counts[kind] = tally
    return counts


def audit(conn: Connection, org_id: int) -> list[dict[str, Any]]:
    """Every organization, contact and link row of ``org_id`` whose seal does not verify now
    (``sealbill contacts verify-seals``): what the guard would refuse, listed before a send."""
    keys = for_connection(conn).keys
    found: list[dict[str, Any]] = []
    for kind, table in TABLES.items():
        scope = table.c.id if kind == "organization" else table.c.organization_id
        for row in conn.execute(sa.select(table).where(scope == org_id)).all():
            check = check_row(keys, kind, row._mapping)
            if check is not seals.Check.VALID:
                found.append({"kind": kind, "id": int(row.id), "seal": check.value,
                              "key_id": row._mapping["seal_key_id"],
                              **({"email": row._mapping["email"]} if kind == "contact" else {}),
                              **({"contact_id": int(row._mapping["contact_id"]),
                                  "account_id": int(row._mapping["account_id"]),
                                  "role": row._mapping["role"],
                                  "status": row._mapping["status"]} if kind == "link" else {})})
    return found
