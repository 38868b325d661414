"""Rating on the queue: a run's accounts rated in chunks, each chunk a job, each billed once,
with the same invoices as the embedded one-command run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app.distributed import enqueue_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.queued_rating import RATE_CHUNK_ENV, bill_chunk, chunk_ids
from sealbill.store.schema import invoices, rating_chunks
from sealbill.workers import advance
from sealbill.workers.run import init_schema
from tests.support.scenario import account_records, seed_organization


def _records() -> list[dict[str, Any]]:
    """Companies in France and, for the OSS running total, consumers in Germany."""
    records = account_records(8)
    for record in records[1::3]:
        record.update(is_business=False, country="DE", postcode="10115", city="Berlin",
                      name=f"Kunde {record['reference']}")
    return records


def _billed(engine: Engine, org_id: int) -> dict[str, tuple[Any, ...]]:
    with engine.begin() as conn:
        return {str(r.account_reference): (r.total_incl_minor, r.tax_total_minor, r.kind)
                for r in conn.execute(sa.select(invoices).where(
                    invoices.c.organization_id == org_id))}


def _jobs(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.begin() as conn:
        return [(str(t), dict(a)) for t, a in conn.execute(sa.text(
            "SELECT task_name, args FROM procrastinate_jobs ORDER BY id"))]


def test_a_run_is_rated_in_chunk_jobs_once_each_as_the_one_command_run_would(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_schema(pg_url)
    monkeypatch.setenv(RATE_CHUNK_ENV, "3")
    chunked, _ = seed_organization(pg_engine, accounts=8, files_dir=tmp_path, slug="chunked",
                                   records=_records())
    whole, _ = seed_organization(pg_engine, accounts=8, files_dir=tmp_path, slug="whole",
                                 records=_records())
    run_id, enqueued = enqueue_run(pg_engine, chunked, "2026-10", actor="test")
    assert enqueued == ["sealbill.rate"] * 3  # 8 accounts by 3, with the run, one transaction
    with pg_engine.begin() as conn:
        chunks = chunk_ids(conn, chunked, run_id)
        last_bound = conn.execute(sa.select(rating_chunks.c.next_account_id).where(
            rating_chunks.c.id == chunks[-1])).scalar()
    assert [a["chunk_id"] for _, a in _jobs(pg_engine)] == chunks and last_bound is None
    for chunk in reversed(chunks):  # any order
        result = bill_chunk(pg_engine, chunked, chunk)
        assert result is not None and result.drafted > 0
    assert [bill_chunk(pg_engine, chunked, c) for c in chunks] == [None] * 3  # reruns: nothing
    bill_period(pg_engine, whole, "2026-10", actor="test", workers=1)
    assert _billed(pg_engine, chunked) == _billed(pg_engine, whole)
    assert len(_billed(pg_engine, chunked)) == 8
    with pg_engine.begin() as conn:
        assert [w.task for w in advance.wanted(conn, chunked, run_id)] == ["sealbill.finalize"]


def test_a_chunk_rated_by_two_workers_at_once_is_billed_once(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_schema(pg_url)
    monkeypatch.setenv(RATE_CHUNK_ENV, "100")
    org_id, _ = seed_organization(pg_engine, accounts=8, files_dir=tmp_path, records=_records())
    run_id, _ = enqueue_run(pg_engine, org_id, "2026-10", actor="test")
    with pg_engine.begin() as conn:
        (chunk,) = chunk_ids(conn, org_id, run_id)
    barrier, results = threading.Barrier(2), []

    def worker() -> None:
        barrier.wait()
        results.append(bill_chunk(pg_engine, org_id, chunk))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is None for r in results) == [False, True]
    with pg_engine.begin() as conn:
        keys = list(conn.execute(sa.select(invoices.c.billing_key)).scalars())
    assert len(keys) == 8 == len(set(keys))
