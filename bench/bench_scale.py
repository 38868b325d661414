"""The whole cycle on the queue (``sealbill worker``) with 1 and 2 workers: invoices/s, speed-up,
and what PostgreSQL does per invoice (WAL bytes, commits, rows written and by which tables, the
time its backends spent executing statements, the peak of connections), for the projection in
bench/RESULTS.md.

Each worker count gets a fresh database on one throwaway PostgreSQL cluster at its default
durability (fsync and synchronous commit on), the same seeded organization, an aiosmtpd sink
(sealbill's ``DiscardHandler``, in its own process) and ``SEALBILL_DKIM=off``. The clock runs from
``run start`` (enqueue) to the ``verify`` job's success: rating, finalization, rendering, plan,
canary, sending and the ledger check, all as jobs.

    python bench/bench_scale.py --accounts 400 --workers 1,2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import sqlalchemy as sa  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402
from tests.support.scenario import seed_organization  # noqa: E402

from sealbill.app.distributed import enqueue_run  # noqa: E402
from sealbill.mail.sink import DiscardHandler, free_port, start_sink  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402
from sealbill.workers.run import init_schema  # noqa: E402


def _serve(port: int) -> None:
    start_sink(DiscardHandler(), port=port)
    while True:
        time.sleep(3600)


def _db_counters(engine: sa.Engine) -> dict[str, int]:
    """Cumulative counters of the database; ``active_ms``: the time all its backends spent
    executing statements (PostgreSQL 14+, reported when a session ends or every second)."""
    with engine.connect() as conn:
        wal = conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar()
        commits, active = conn.exec_driver_sql(
            "SELECT xact_commit, active_time FROM pg_stat_database "
            "WHERE datname = current_database()").one()
        rows = conn.exec_driver_sql(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        ).scalar()
    return {"wal": int(wal or 0), "commits": int(commits or 0), "rows": int(rows or 0),
            "active_ms": int(active or 0)}


def _table_writes(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(t): int(n) for t, n in conn.exec_driver_sql(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")}


def _connections(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).scalar_one())


def one(base: str, work: Path, accounts: int, workers: int, concurrency: int,
        smtp_port: int) -> dict[str, Any]:
    name = f"bench_w{workers}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    engine = create_engine(url)
    upgrade(engine)
    org_id, _ = seed_organization(engine, accounts=accounts, files_dir=work / name / "seed")
    init_schema(url)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
           "SEALBILL_DATABASE_URL": url, "SEALBILL_FILES_DIR": str(work / name / "files"),
           "SEALBILL_SMTP_HOST": "127.0.0.1", "SEALBILL_SMTP_PORT": str(smtp_port),
           "SEALBILL_DKIM": "off", "SEALBILL_SEND_SLICES": str(max(2, workers * concurrency)),
           "SEALBILL_RENDER_CHUNK": "50", "SEALBILL_LOG_LEVEL": "warning"}
    os.environ["SEALBILL_RATE_CHUNK"] = "250"  # this process enqueues (and chunks) the run
    procs = [subprocess.Popen([sys.executable, "-m", "sealbill", "worker", "--concurrency",
                               str(concurrency), "--name", f"w{i}"], env=env,
                              stdout=subprocess.DEVNULL,
                              stderr=(work / f"{name}-w{i}.log").open("wb"))
             for i in range(workers)]
    try:
        time.sleep(2.0)  # the workers are up (imports) before the clock starts
        before, tables_before = _db_counters(engine), _table_writes(engine)
        started = time.perf_counter()
        run_id, _ = enqueue_run(engine, org_id, "2026-10", actor="bench")
        peak = 0
        while True:
            peak = max(peak, _connections(engine))
            with engine.connect() as conn:
                done = conn.execute(sa.text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'sealbill.verify'"
                    " AND status = 'succeeded'")).scalar()
                failed = conn.execute(sa.text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")).scalar()
            if done or failed:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            sent = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE run_id = :r AND status = 'sent'"),
                {"r": run_id}).scalar_one()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    time.sleep(1.5)  # the workers' sessions ended: their statistics are reported
    after, tables_after = _db_counters(engine), _table_writes(engine)
    engine.dispose()
    admin.dispose()
    writes = sorted(((tables_after[t] - tables_before.get(t, 0)) / accounts, t)
                    for t in tables_after)
    return {"workers": workers, "concurrency": concurrency, "seconds": seconds,
            "sent": int(sent), "failed_jobs": int(failed or 0),
            "per_s": accounts / seconds, "peak_connections": peak,
            "top_tables": [(t, round(n, 1)) for n, t in reversed(writes[-8:])],
            **{f"{k}_per_invoice": (after[k] - before[k]) / accounts for k in after}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at once per worker")
    args = parser.parse_args()
    os.environ.setdefault("SEALBILL_SECRET_KEY", "bench-sealing-key-" + "0" * 32)
    work = Path(tempfile.mkdtemp(prefix="sealbill-bench-scale-"))
    os.environ.setdefault("SEALBILL_KEYRING_DIR", str(work / "keys"))
    (work / "keys").mkdir(exist_ok=True)
    port = free_port()
    sink = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    sink.start()
    cluster = start_cluster(durable=True)
    base = cluster.url.rsplit("/", 1)[0]
    try:
        results = [one(base, work, args.accounts, int(n), args.concurrency, port)
                   for n in args.workers.split(",")]
    finally:
        cluster.stop()
        sink.terminate()
    first = results[0]["per_s"]
    print(f"{args.accounts} accounts, {os.cpu_count()} CPUs, concurrency {args.concurrency}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("workers  seconds  invoices/s  speed-up  sent  failed-jobs  WAL B/inv  "
          "commits/inv  rows/inv  DB ms/inv  peak conns")
    for r in results:
        print(f"{r['workers']:>7}  {r['seconds']:7.1f}  {r['per_s']:10.1f}  "
              f"{r['per_s'] / first:8.2f}  {r['sent']:>4}  {r['failed_jobs']:>11}  "
              f"{r['wal_per_invoice']:9.0f}  {r['commits_per_invoice']:11.1f}  "
              f"{r['rows_per_invoice']:8.1f}  {r['active_ms_per_invoice']:9.2f}  "
              f"{r['peak_connections']:>10}")
    for r in results:
        print(f"rows written per invoice by table ({r['workers']} workers): {r['top_tables']}")


if __name__ == "__main__":
    main()
