"""Benchmark of the billing core: meter (usage import), rate + draft, finalize.

Usage:
    python bench/bench_billing.py [--events 1000000] [--accounts 100000] [--db sqlite|postgresql]
    python bench/bench_billing.py --memory-curve   # peak RSS at 10k / 50k / 100k accounts

Each case runs in a fresh process so its peak RSS is its own. Side by side in the same run,
the import is compared against a baseline: one INSERT statement per event through SQLAlchemy
(the naive loop many billing systems start with), on a sample.
Prints a Markdown table; paste it into bench/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_usage(path: Path, accounts: int, events: int) -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    per = max(1, events // accounts)
    with path.open("w", encoding="utf-8") as handle:
        n = 0
        for a in range(1, accounts + 1):
            for k in range(per):
                if n >= events:
                    return
                moment = start + timedelta(seconds=(n * 7919) % (30 * 86400))
                handle.write(json.dumps({
                    "event_id": f"ev-{n}", "account_reference": f"A{a:07d}",
                    "metric_code": "api_calls" if k % 2 else "storage_gb",
                    "timestamp": moment.isoformat(), "value": str(1 + n % 500)}) + "\n")
                n += 1


def _setup(url: str, accounts: int, workdir: Path) -> int:
    from sealbill.demo.seed import METRICS, ORGANIZATION, plans
    from sealbill.pipeline.organizations import create_org
    from sealbill.store import catalog as catalog_store
    from sealbill.store.db import create_engine
    from sealbill.store.migrate import upgrade
    from sealbill.store.schema import accounts as accounts_table

    engine = create_engine(url)
    upgrade(engine)
    at = datetime.now(UTC)
    with engine.begin() as conn:
        org_id = create_org(conn, dict(ORGANIZATION))
        for code, name, aggregation, field in METRICS:
            catalog_store.add_metric(conn, org_id, code, name, aggregation, field)
        for plan in plans(date(2025, 1, 1)):
            catalog_store.add_plan(conn, org_id, plan, at)
        for start in range(0, accounts, 10_000):
            rows = [{"organization_id": org_id, "reference": f"A{i:07d}",
                     "public_id": f"acc_bench_{i}", "name": f"Client {i}",
                     "address_line1": "1 rue A", "address_line2": "", "postcode": "75001",
                     "city": "Paris", "country": "FR", "is_business": True, "vat_id": None,
                     "vat_id_valid": False, "currency": "EUR", "locale": "fr",
                     "is_internal_test": False, "created_at": at}
                    for i in range(start + 1, min(accounts, start + 10_000) + 1)]
            ids = conn.execute(accounts_table.insert().returning(
                accounts_table.c.id, sort_by_parameter_order=True), rows).scalars().all()
            catalog_store.add_subscriptions_bulk(conn, org_id, [
                {"account_id": i, "external_id": f"s{i}", "plan_code": "pro-eur",
                 "started_on": date(2025, 6, 1)} for i in ids], at)
    engine.dispose()
    return org_id


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case(url: str, accounts: int, events: int, workdir: Path, baseline: int) -> dict[str, Any]:
    from sealbill.pipeline.billing import bill_period
    from sealbill.pipeline.finalize import finalize_run
    from sealbill.pipeline.usage_import import import_usage_file
    from sealbill.store.db import create_engine

    org_id = _setup(url, accounts, workdir)
    usage = workdir / "usage.jsonl"
    _write_usage(usage, accounts, events)
    engine = create_engine(url)
    result: dict[str, Any] = {"db": url.split(":")[0], "accounts": accounts, "events": events}
    if baseline:
        result["baseline_events_per_s"] = _baseline(engine, org_id, usage, baseline)
    t = time.perf_counter()
    imported = import_usage_file(engine, org_id, usage)
    result["import_s"] = time.perf_counter() - t
    result["events_per_s"] = imported["inserted"] / result["import_s"]
    t = time.perf_counter()
    billed = bill_period(engine, org_id, "2026-11", actor="bench")
    result["rate_draft_s"] = time.perf_counter() - t
    t = time.perf_counter()
    done = finalize_run(engine, org_id, billed.run_id or 0, issue_date=date(2026, 11, 1))
    result["finalize_s"] = time.perf_counter() - t
    result["invoices"] = len(done)
    result["peak_rss_mb"] = _peak_mb()
    engine.dispose()
    return result


def _baseline(engine: Any, org_id: int, usage: Path, sample: int) -> float:
    """One INSERT per event through SQLAlchemy, each event parsed the same way."""
    from sealbill.domain.usage import parse_usage_record, payload_digest
    from sealbill.store import parties
    from sealbill.store.schema import usage_events

    with engine.begin() as conn:
        accounts = parties.account_ids_by_reference(conn, org_id)
    rows = [json.loads(line) for _, line in zip(range(sample), usage.open(), strict=False)]
    t = time.perf_counter()
    with engine.begin() as conn:
        for n, row in enumerate(rows):
            event = parse_usage_record(row, n)
            conn.execute(usage_events.insert().values(
                organization_id=org_id, account_id=accounts[event.account_reference],
                event_id="baseline-" + event.event_id, metric_code=event.metric_code,
                occurred_at=event.timestamp, value=event.value, properties=None,
                payload_digest=payload_digest(event)))
        conn.rollback()
    return sample / (time.perf_counter() - t)


def _url(kind: str, workdir: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite'}", None
    from tests.support.pgcluster import start_cluster

    cluster = start_cluster()
    return cluster.url, cluster


def run_child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, cluster = _url(args.db, Path(tmp))
        try:
            print(json.dumps(case(url, args.accounts, args.events, Path(tmp), args.baseline)))
        finally:
            if cluster:
                cluster.stop()


def spawn(db: str, accounts: int, events: int, baseline: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", "--db", db, "--accounts",
                          str(accounts), "--events", str(events), "--baseline", str(baseline)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=20_000)
    parser.add_argument("--memory-curve", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.db = args.db[0]
        run_child(args)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}")
    if args.memory_curve:
        rows = [spawn("sqlite", n, n * 10, 0) for n in (10_000, 50_000, 100_000)]
    else:
        rows = [spawn(db, args.accounts, args.events, args.baseline)
                for db in (args.db or ["sqlite", "postgresql"])]
    print("| db | accounts | events | import events/s | baseline events/s | rate+draft s "
          "| finalize s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['db']} | {r['accounts']:,} | {r['events']:,} | {r['events_per_s']:,.0f} "
              f"| {r.get('baseline_events_per_s', 0):,.0f} | {r['rate_draft_s']:.1f} "
              f"| {r['finalize_s']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
