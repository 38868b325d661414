"""The plan stage alone at large sizes: its CPU and its peak memory, for N accounts.

    .venv/bin/python bench/bench_plan.py [--accounts 100000] [--workdir DIR] [--json]

The whole cycle (``bench_cycle.py``) renders every invoice before planning, which makes a
100,000-account run take over an hour on this machine; the plan stage reads only rows. Here a
forked process seeds the demo organization (accounts, verified contacts: the seed of
``bench_cycle.py``) and writes, for two months, one finalized invoice per account with its
four document rows (digests of nothing: the plan reads digests, not files). This process then
plans the first month (a first cycle) and the second (judged against the first: the diff gate,
the fan-in, the approval digests), each with the kernel's high-water mark reset before it
(``VmHWM``), and prints their CPU seconds and peak RSS. The figures to compare are those of two
sizes: the same peak for both is what "flat" means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

import sqlalchemy as sa  # noqa: E402
from bench_cycle import _cpu, _hwm_mb, _reset_peak, fresh_workdir, seed_apart  # noqa: E402

from sealbill.pipeline.billing.invoice import open_run, period_bounds  # noqa: E402
from sealbill.pipeline.delivery.plan import approve_run, plan_run  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402
from sealbill.store.schema import accounts, billing_runs, documents, invoices  # noqa: E402

MONTHS = ("2026-10", "2026-11")


def _invoices(engine: Any, org_id: int, period: str, month: int) -> int:
    """One finalized invoice per account for ``period``, its documents recorded."""
    start, end = period_bounds(period)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        run_id = open_run(conn, org_id, period, start, end, "bench")
        conn.execute(sa.update(billing_runs).where(billing_runs.c.id == run_id)
                     .values(status="rendered"))
        rows = conn.execute(sa.select(accounts.c.id, accounts.c.reference, accounts.c.currency)
                            .where(accounts.c.organization_id == org_id)
                            .order_by(accounts.c.id)).all()
        for at in range(0, len(rows), 1000):
            chunk = rows[at:at + 1000]
            ids = conn.execute(sa.insert(invoices).returning(
                invoices.c.id, sort_by_parameter_order=True), [
                {"organization_id": org_id, "run_id": run_id, "account_id": a.id,
                 "kind": "invoice", "status": "finalized", "billing_key": f"{a.id}:{period}",
                 "number": f"F-{month}{a.id:07d}", "period_start": start, "issue_date": start,
                 "due_date": start, "currency": a.currency, "locale": "fr",
                 "total_excl_minor": 1000 + a.id % 97, "tax_total_minor": 200,
                 "total_incl_minor": 1200 + a.id % 97, "account_reference": a.reference,
                 "created_at": now, "finalized_at": now} for a in chunk]).scalars().all()
            conn.execute(sa.insert(documents), [
                {"organization_id": org_id, "invoice_id": i, "kind": kind,
                 "path": f"{i}.{kind}", "sha256": f"{i:064x}", "size": 1, "created_at": now}
                for i in ids for kind in ("pdf", "xml", "html", "txt")])
    return int(run_id)


def _plan(engine: Any, org_id: int, run_id: int) -> dict[str, Any]:
    _reset_peak()
    wall, cpu = time.perf_counter(), _cpu()
    result = plan_run(engine, org_id, run_id, actor="bench")
    if result.verdict == "hold":
        approve_run(engine, org_id, run_id, actor="reviewer", reason="bench")
    return {"envelopes": result.envelopes, "verdict": result.verdict,
            "wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(_cpu() - cpu, 2),
            "peak_rss_mb": round(_hwm_mb())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = fresh_workdir(args.workdir, "sealbill-plan-")
    url = f"sqlite:///{workdir / 'sealbill.sqlite'}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    load_before = os.getloadavg()
    begin, cpu = time.perf_counter(), _cpu()
    seeded = seed_apart(url, args.accounts, date(2026, 10, 1), workdir)
    org_id = int(seeded["org_id"])
    runs = [_invoices(engine, org_id, period, n) for n, period in enumerate(MONTHS)]
    prepared = {"wall_s": round(time.perf_counter() - begin, 1),
                "cpu_s": round(_cpu() - cpu, 1), "seed_peak_rss_mb": seeded["peak_rss_mb"]}
    engine.dispose()
    stages = {f"plan {period}": _plan(engine, org_id, run_id)
              for period, run_id in zip(MONTHS, runs, strict=True)}
    summary = {"accounts": args.accounts, "load_before": load_before,
               "load_after": os.getloadavg(), "prepared": prepared, "stages": stages}
    shutil.rmtree(workdir)
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{args.accounts} accounts · load average before {load_before[0]:.2f} after "
          f"{os.getloadavg()[0]:.2f} · seed + invoices {prepared['wall_s']} s wall, "
          f"{prepared['cpu_s']} s CPU\n")
    print("| stage | envelopes | verdict | wall s | CPU s | ms CPU/envelope | peak RSS MB |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, row in stages.items():
        print(f"| {name} | {row['envelopes']} | {row['verdict']} | {row['wall_s']} | "
              f"{row['cpu_s']} | {1000 * row['cpu_s'] / row['envelopes']:.3f} | "
              f"{row['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
