"""Benchmark of the billing core: meter (usage import), rate + draft, finalize.

Usage:
    python bench/bench_billing.py [--events 1000000] [--accounts 100000] [--db sqlite|postgresql]
    python bench/bench_billing.py --memory-curve   # peak RSS at 10k / 50k / 100k accounts

Each case runs in a fresh process so its peak RSS is its own. Side by side in the same run,
the import is compared against a baseline: one INSERT statement per event through SQLAlchemy
(the naive loop many billing systems start with), on a sample.
PostgreSQL runs with its default durability (fsync, synchronous commit, full-page writes).
The CPU columns add up this process, its rating workers and, on PostgreSQL, the server: on a
shared machine they vary less with the load than the elapsed times.
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
    """The usage file: the lines ``json.dumps`` wrote before, formatted directly (10 million
    events took 48 s of CPU to generate through ``json.dumps`` and ``isoformat``)."""
    start = datetime(2026, 10, 1, tzinfo=UTC)
    per = max(1, events // accounts)
    # One timestamp text per second of the 30 days would be 2.6 million strings: the day's
    # text and the second of the day are formatted apart instead.
    days = [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(30)]
    with path.open("w", encoding="utf-8") as handle:
        n = 0
        for a in range(1, accounts + 1):
            reference = f"A{a:07d}"
            lines = []
            for k in range(per):
                if n >= events:
                    break
                day, second = divmod((n * 7919) % (30 * 86400), 86400)
                hour, rest = divmod(second, 3600)
                metric = "api_calls" if k % 2 else "storage_gb"
                lines.append(
                    f'{{"event_id": "ev-{n}", "account_reference": "{reference}", '
                    f'"metric_code": "{metric}", "timestamp": "{days[day]}T{hour:02d}:'
                    f'{rest // 60:02d}:{rest % 60:02d}+00:00", "value": "{1 + n % 500}"}}\n')
                n += 1
            handle.writelines(lines)
            if n >= events:
                return


def _setup(url: str, accounts: int, workdir: Path) -> int:
    from sealbill.demo.seed import METRICS, ORGANIZATION, plans
    from sealbill.pipeline.parties.organizations import create_org
    from sealbill.store.billing import catalog as catalog_store
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


def _cpu_s(server_pid: int | None) -> float:
    """CPU seconds so far of this process, of its finished children (the rating workers) and,
    on PostgreSQL, of the server (the postmaster and its children, read from /proc): on a
    machine shared with other work, the figure that does not depend on the load."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    if server_pid:
        ticks = 0
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
            except (OSError, ValueError):
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if entry.name == str(server_pid) or fields[1] == str(server_pid):
                ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        total += ticks / os.sysconf("SC_CLK_TCK")
    return total


def case(url: str, accounts: int, events: int, workdir: Path, baseline: int,
         import_only: bool = False, server_pid: int | None = None) -> dict[str, Any]:
    from sealbill.pipeline.billing.finalize import finalize_run
    from sealbill.pipeline.billing.invoice import bill_period
    from sealbill.pipeline.billing.usage_import import import_usage_file
    from sealbill.store.db import create_engine

    org_id = _setup(url, accounts, workdir)
    usage = workdir / "usage.jsonl"
    _write_usage(usage, accounts, events)
    engine = create_engine(url)
    result: dict[str, Any] = {"db": url.split(":")[0], "accounts": accounts, "events": events}
    if baseline:
        result["baseline_events_per_s"] = _baseline(engine, org_id, usage, baseline)
    t, cpu = time.perf_counter(), _cpu_s(server_pid)
    imported = import_usage_file(engine, org_id, usage)
    result["import_s"] = time.perf_counter() - t
    # Both threads of the import (it parses and inserts in parallel), and the server.
    result["import_cpu_us"] = (_cpu_s(server_pid) - cpu) / events * 1e6
    result["events_per_s"] = imported["inserted"] / result["import_s"]
    if import_only:
        result["peak_rss_mb"] = _peak_mb()
        engine.dispose()
        return result
    t, cpu = time.perf_counter(), _cpu_s(server_pid)
    billed = bill_period(engine, org_id, "2026-11", actor="bench")
    result["rate_draft_s"] = time.perf_counter() - t
    result["rate_draft_cpu_s"] = _cpu_s(server_pid) - cpu
    t, cpu = time.perf_counter(), _cpu_s(server_pid)
    done = finalize_run(engine, org_id, billed.run_id or 0, issue_date=date(2026, 11, 1))
    result["finalize_s"] = time.perf_counter() - t
    result["finalize_cpu_s"] = _cpu_s(server_pid) - cpu
    result["invoices"] = len(done)
    result["peak_rss_mb"] = _peak_mb()
    engine.dispose()
    return result


def _baseline(engine: Any, org_id: int, usage: Path, sample: int) -> float:
    """One INSERT per event through SQLAlchemy, each event parsed by the domain."""
    from sealbill.domain.usage_records import parse_usage_record
    from sealbill.store.parties import records as parties
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
                occurred_at=event.timestamp, value=event.value, properties=None))
        conn.rollback()
    return sample / (time.perf_counter() - t)


def _url(kind: str, workdir: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite'}", None
    from tests.support.pgcluster import start_cluster

    # PostgreSQL's default durability (fsync, synchronous commit, full-page writes), unlike the
    # test suite's cluster.
    cluster = start_cluster(durable=True)
    return cluster.url, cluster


def run_child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, cluster = _url(args.db, Path(tmp))
        try:
            server_pid = None
            if cluster:
                pid_file = cluster.directory / "data" / "postmaster.pid"
                server_pid = int(pid_file.read_text().split()[0])
            print(json.dumps(case(url, args.accounts, args.events, Path(tmp), args.baseline,
                                  args.import_only, server_pid)))
        finally:
            if cluster:
                cluster.stop()


def spawn(db: str, accounts: int, events: int, baseline: int,
          import_only: bool = False) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", "--db", db, "--accounts",
                          str(accounts), "--events", str(events), "--baseline", str(baseline),
                          *(["--import-only"] if import_only else [])],
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
    parser.add_argument("--import-only", action="store_true",
                        help="only the usage import (and its baseline), not rating and finalizing")
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
        rows = [spawn(db, args.accounts, args.events, args.baseline, args.import_only)
                for db in (args.db or ["sqlite", "postgresql"])]
    print("| db | accounts | events | import events/s | import CPU µs/event | baseline events/s "
          "| rate+draft s | finalize s | rate+draft CPU s | finalize CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['db']} | {r['accounts']:,} | {r['events']:,} | {r['events_per_s']:,.0f} "
              f"| {r['import_cpu_us']:.2f} | {r.get('baseline_events_per_s', 0):,.0f} "
              f"| {r.get('rate_draft_s', 0):.1f} | {r.get('finalize_s', 0):.1f} "
              f"| {r.get('rate_draft_cpu_s', 0):.1f} | {r.get('finalize_cpu_s', 0):.1f} "
              f"| {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
