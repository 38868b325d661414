"""The render stage alone (``render_run``): CPU of this process and of its workers an invoice.

    .venv/bin/python bench/bench_render_stage.py seed --accounts 10000 --out DIR
    .venv/bin/python bench/bench_render_stage.py run --seeded DIR --work WORK [--profile OUT]

``seed`` builds, once, a finalized SQLite database as ``bench_cycle.py`` seeds it (the demo's
organization, meter, rate + invoice, finalize) in ``DIR``. ``run`` copies that database into
``WORK`` (emptied first), renders the run into ``WORK/files`` with the pool of 2 (started and
shut down inside the measurement, so the workers' CPU is counted: they are reaped) and prints
one JSON line: wall, CPU of this process and of its reaped workers, ms of CPU an invoice, the
load average, and one SHA-256 over every stored document (its path under the files folder, its
recorded digest and size, its bytes, in invoice and kind order) — equal for two trees iff they
stored the same documents under the same names.

The code measured is the one on ``PYTHONPATH`` (``sealbill`` is not taken from this tree
unless it is first there): run the same script with ``PYTHONPATH`` on a baseline's ``src`` to
compare. ``--profile OUT`` writes a cProfile of this process (the workers are not profiled).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

PERIOD = "2026-11"


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def seed(accounts: int, out: Path) -> None:
    from sealbill.demo.seed import seed_organization
    from sealbill.pipeline.billing.finalize import finalize_run
    from sealbill.pipeline.billing.invoice import bill_period, period_bounds
    from sealbill.pipeline.billing.usage_import import import_usage_file
    from sealbill.store.db import create_engine
    from sealbill.store.migrate import upgrade

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{out / 'seed.db'}")
    upgrade(engine)
    start, _ = period_bounds(PERIOD)
    with engine.begin() as conn:
        seeded = seed_organization(conn, accounts, date(start.year, start.month, 1), out)
    org_id = int(seeded["org_id"])
    import_usage_file(engine, org_id, Path(seeded["usage_file"]))
    billed = bill_period(engine, org_id, PERIOD, actor="bench")
    assert billed.run_id is not None
    finalized = finalize_run(engine, org_id, billed.run_id, issue_date=start)
    engine.dispose()
    facts = {"org_id": org_id, "run_id": billed.run_id, "invoices": len(finalized),
             "accounts": accounts}
    (out / "facts.json").write_text(json.dumps(facts))
    print(json.dumps(facts))


def documents_digest(engine: sa.Engine, files: Path) -> tuple[str, int]:
    """One SHA-256 over every stored document, and how many documents there are."""
    from sealbill.store.schema import documents

    digest, count = hashlib.sha256(), 0
    root = str(files.resolve())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(documents.c.invoice_id, documents.c.kind,
                                      documents.c.path, documents.c.sha256,
                                      documents.c.size)
                            .order_by(documents.c.invoice_id, documents.c.kind))
        for invoice_id, kind, path, sha256, size in rows:
            data = Path(path).read_bytes()
            relative = os.path.relpath(path, root)
            head = f"{invoice_id}\0{kind}\0{relative}\0{sha256}\0{size}\0{len(data)}\0"
            digest.update(head.encode())
            digest.update(data)
            count += 1
    return digest.hexdigest(), count


def run(seeded: Path, work: Path, profile: Path | None) -> None:
    import sealbill
    from sealbill.documents.render import shutdown_pool
    from sealbill.pipeline.billing.render import RenderCounts, render_run
    from sealbill.store.db import create_engine

    facts = json.loads((seeded / "facts.json").read_text())
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(seeded / "seed.db", work / "seed.db")
    engine = create_engine(f"sqlite:///{work / 'seed.db'}")
    load = os.getloadavg()[0]
    counts = RenderCounts()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    (own, kids), begin = _cpu(), time.perf_counter()
    rendered = render_run(engine, facts["org_id"], facts["run_id"], work / "files",
                          counts=counts)
    shutdown_pool()  # reaps the workers: their CPU is counted
    wall, (own_after, kids_after) = time.perf_counter() - begin, _cpu()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    parent, workers = own_after - own, kids_after - kids
    digest, count = documents_digest(engine, work / "files")
    print(json.dumps({
        "code": str(Path(sealbill.__file__).parents[1]), "invoices": rendered,
        "renderers": counts.by_renderer, "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2), "wall_s": round(wall, 2),
        "cpu_parent_s": round(parent, 2), "cpu_workers_s": round(workers, 2),
        "ms_cpu_per_invoice": round(1000 * (parent + workers) / max(rendered, 1), 3),
        "documents": count, "documents_sha256": digest}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed")
    seeding.add_argument("--accounts", type=int, default=10_000)
    seeding.add_argument("--out", type=Path, required=True)
    running = commands.add_parser("run")
    running.add_argument("--seeded", type=Path, required=True)
    running.add_argument("--work", type=Path, required=True)
    running.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "seed":
        seed(args.accounts, args.out)
    else:
        run(args.seeded, args.work, args.profile)


if __name__ == "__main__":
    sys.exit(main())
