"""store.bulk_insert: many rows in one statement (COPY on PostgreSQL), all or none."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.bulk_insert import insert_rows
from sealbill.store.migrate import upgrade
from sealbill.store.schema import documents, invoice_lines


def _rows(invoice_id: int, at: datetime) -> list[dict[str, object]]:
    return [{"organization_id": 1, "invoice_id": invoice_id, "kind": kind, "path": f"/x/{kind}",
             "sha256": "0" * 64, "size": 3, "created_at": at} for kind in ("pdf", "xml")]


def test_rows_breaking_a_foreign_key_fail_as_a_whole(any_engine: Engine) -> None:
    upgrade(any_engine)
    with pytest.raises(sa.exc.IntegrityError), any_engine.begin() as conn:
        insert_rows(conn, documents, _rows(424242, datetime(2026, 12, 7, tzinfo=UTC)))
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar() == 0


def test_a_naive_time_is_refused(any_engine: Engine) -> None:
    upgrade(any_engine)
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive datetime refused"), \
            any_engine.begin() as conn:
        insert_rows(conn, documents, _rows(1, datetime(2026, 12, 7)))


def test_a_column_type_copy_cannot_write_is_refused_before_anything_is_sent(
        pg_engine: Engine) -> None:
    """COPY skips SQLAlchemy's bind processing: a type whose processing it does not repeat
    (here ``DecimalText``) is refused instead of stored as the driver would write it."""
    upgrade(pg_engine)
    rows = [{"organization_id": 1, "invoice_id": 1, "position": n, "quantity": Decimal("1.5")}
            for n in (1, 2)]
    with pytest.raises(TypeError, match="DecimalText"), pg_engine.begin() as conn:
        insert_rows(conn, invoice_lines, rows)
