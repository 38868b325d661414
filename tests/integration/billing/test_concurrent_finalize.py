"""Eight finalizers at once on PostgreSQL: the numbers stay unique and gapless."""

from __future__ import annotations

import multiprocessing
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from sealbill.pipeline.billing.invoice import bill_period
from sealbill.store.billing import invoices as invoice_store
from sealbill.store.db import create_engine
from sealbill.store.schema import invoices
from tests.support.scenario import build_scenario


def _finalize_slice(url: str, org_id: int, ids: list[int]) -> None:
    engine = create_engine(url)
    from datetime import UTC, datetime

    for start in range(0, len(ids), 3):  # small transactions so the finalizers interleave
        with engine.begin() as conn:
            invoice_store.finalize(conn, org_id, ids[start:start + 3],
                                   issue_date=date(2026, 11, 1), at=datetime.now(UTC))
    engine.dispose()


def test_eight_concurrent_finalizers_produce_a_gapless_unique_sequence(
        pg_engine: Engine, pg_url: str, tmp_path: Path) -> None:
    s = build_scenario(pg_engine, accounts=80, files_dir=tmp_path, render=False)
    result = bill_period(pg_engine, s.org_id, "2026-11", actor="x")
    with pg_engine.begin() as conn:
        drafts = [int(i) for i in conn.execute(sa.select(invoices.c.id).where(
            invoices.c.run_id == result.run_id)).scalars()]
    assert len(drafts) == 80
    # Overlapping slices: every draft is claimed by two finalizers; each must number it once.
    slices = [drafts[i * 10:(i + 2) * 10] for i in range(8)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_finalize_slice, args=(pg_url, s.org_id, ids))
               for ids in slices]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with pg_engine.begin() as conn:
        numbers = sorted(conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == s.org_id, invoices.c.kind == "invoice")).scalars())
    assert numbers == [f"F-{n:06d}" for n in range(1, 161)]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 7), min_size=1, max_size=12))
def test_numbers_stay_gapless_whatever_the_finalization_batches(
        sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory,
        batches: list[int]) -> None:
    import shutil
    from datetime import UTC, datetime

    folder = tmp_path_factory.mktemp("gapless")
    shutil.copyfile(sqlite_template, folder / "db.sqlite")
    engine = create_engine(f"sqlite:///{folder / 'db.sqlite'}")
    s = build_scenario(engine, accounts=12, files_dir=folder, render=False)
    result = bill_period(engine, s.org_id, "2026-11", actor="x")
    with engine.begin() as conn:
        drafts = sorted(int(i) for i in conn.execute(sa.select(invoices.c.id).where(
            invoices.c.run_id == result.run_id)).scalars())
    position = 0
    for size in batches:
        with engine.begin() as conn:
            invoice_store.finalize(conn, s.org_id, drafts[position:position + size],
                                   issue_date=date(2026, 11, 1), at=datetime.now(UTC))
        position += size
    with engine.begin() as conn:
        numbers = sorted(conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == s.org_id,
            invoices.c.number.is_not(None))).scalars())
    engine.dispose()
    assert numbers == [f"F-{n:06d}" for n in range(1, 13 + min(position, 12))]
