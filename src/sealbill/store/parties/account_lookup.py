"""Account ids by reference, for the references a chunk of input names (not the whole
organization's map: the usage import looks its accounts up a chunk at a time, so its memory
does not grow with the number of accounts)."""

from __future__ import annotations

import json
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from sealbill.store.schema import accounts

_BY_REFERENCE_SQLITE = sa.text(
    "SELECT reference, id FROM accounts WHERE organization_id = :org "
    "AND reference IN (SELECT value FROM json_each(:refs))")


def account_ids_of(conn: Connection, org_id: int, references: Collection[str]
                   ) -> dict[str, int]:
    """reference -> id of the organization's accounts among ``references`` (archived ones
    too; unknown references are absent), in one statement with one parameter whatever their
    number (SQLite: a JSON array; PostgreSQL: an array)."""
    if not references:
        return {}
    if conn.dialect.name == "sqlite":
        rows = conn.execute(_BY_REFERENCE_SQLITE, {"org": org_id, "refs": json.dumps(
            list(references), ensure_ascii=False)})
    else:
        array = postgresql.ARRAY(sa.Text)
        rows = conn.execute(sa.select(accounts.c.reference, accounts.c.id).where(
            accounts.c.organization_id == org_id,
            accounts.c.reference == sa.any_(sa.cast(sa.bindparam(
                None, list(references), type_=array), array))))
    return {str(reference): int(account_id) for reference, account_id in rows}
