"""The whole contact-history check (`contact_log.verify`) of two source trees, side by side.

    .venv/bin/python bench/bench_history.py --base /tmp/base-tree [--events N] [--rounds R]
        [--db sqlite|postgresql]

Seeds one database (not timed; ``--db postgresql``: a throwaway cluster of the PostgreSQL
installed here, PostgreSQL's defaults, ``tests/support/pgcluster.py``): an organization with
100 accounts (the scenario's import: each contact added, linked and verified), then N events
appended through ``contact_log.append_many`` in transactions of 5,000 — a mix of added,
address changed (old and new values, non-ASCII), linked and verified (account, role, method,
reason with a dash), an actor with a quote and a cedilla. Then, R rounds, alternating which
tree goes first, each tree's ``verify`` runs in a fresh process (``PYTHONPATH`` = that tree's
``src``) on the same database and keyring: CPU seconds of the walk itself
(``time.process_time``; wall seconds beside, which on PostgreSQL include the server's part),
µs of CPU an event, and that the log verified with no problem. Printed: each run, the
medians, each round's branch/base ratio (its two runs back to back), the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in the child, with only the measured tree's src on the path.
CHILD = """
import json, os, sys, time
from sealbill.store.db import create_engine
from sealbill.store.parties import contact_log
engine = create_engine(sys.argv[1])
with engine.begin() as conn:
    contact_log.for_connection(conn)  # the keyring read before the clock starts
    started, wall = time.process_time(), time.perf_counter()
    report = contact_log.verify(conn, int(sys.argv[2]))
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
print(json.dumps({"cpu": cpu, "wall": wall, "rows": report.rows,
                  "problems": len(report.problems)}))
"""


def seed(url: str, work: Path, events: int) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    import sqlalchemy as sa
    from tests.support.scenario import seed_organization

    from sealbill.store.db import create_engine
    from sealbill.store.migrate import upgrade
    from sealbill.store.parties import contact_log
    from sealbill.store.schema import contacts

    engine = create_engine(url)
    upgrade(engine)
    org_id, accounts = seed_organization(engine, accounts=100, files_dir=work / "files")
    with engine.begin() as conn:
        contact_ids = list(conn.execute(sa.select(contacts.c.id)).scalars())
    account_ids = sorted(accounts.values())
    rnd = random.Random(16)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for start in range(0, events, 5000):
        batch = []
        for i in range(start, min(start + 5000, events)):
            kind = ("added", "address_changed", "linked", "verified")[i % 4]
            event: dict[str, object] = {"contact_id": rnd.choice(contact_ids), "event": kind,
                                        "actor": 'import:façade "b"',
                                        "at": at + timedelta(seconds=i, microseconds=i)}
            if kind == "address_changed":
                event.update(old_value=f"old{i}@client1.example",
                             new_value=f"é{i}@client2.example")
            elif kind != "added":
                event.update(account_id=rnd.choice(account_ids), role="billing",
                             method="operator", reason="fixture — checked")
            batch.append(event)
        with engine.begin() as conn:
            contact_log.append_many(conn, org_id, batch)
    engine.dispose()
    return org_id


def measure(tree: Path, url: str, org_id: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(org_id)], env=env, cwd=tree,
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if result["problems"]:
        raise SystemExit(f"{tree}: the log did not verify ({result['problems']} problems)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the baseline tree")
    parser.add_argument("--branch", type=Path, default=ROOT, help="the tree measured against it")
    parser.add_argument("--events", type=int, default=150_000, help="events appended")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    os.environ["SEALBILL_KEYRING_DIR"] = str(work / "keyring")
    cluster = None
    try:
        if args.db == "postgresql":
            sys.path[:0] = [str(ROOT)]
            from tests.support.pgcluster import start_cluster

            cluster = start_cluster(durable=True)
            url = cluster.url
        else:
            url = f"sqlite:///{work / 'history.sqlite'}"
        started = time.perf_counter()
        org_id = seed(url, work, args.events)
        print(f"{args.db}: seeded {args.events} events in {time.perf_counter() - started:.1f} s "
              f"(not measured); load average {os.getloadavg()[0]:.2f}", flush=True)
        trees = {"base": args.base.resolve(), "branch": args.branch.resolve()}
        runs: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                result = measure(trees[name], url, org_id)
                per_event = result["cpu"] / result["rows"] * 1e6
                runs[name].append(per_event)
                print(f"round {r + 1} {name:6}: {int(result['rows'])} events, "
                      f"{result['cpu']:.2f} s CPU ({result['wall']:.2f} s wall), "
                      f"{per_event:.1f} µs an event; load average "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
        base, branch = (statistics.median(runs[name]) for name in trees)
        # each round's pair ran back to back: its ratio is less shaken by the host's load
        ratios = [b / a for a, b in zip(runs["base"], runs["branch"], strict=True)]
        print(f"median µs an event: base {base:.1f}, branch {branch:.1f} "
              f"({branch / base:.0%} of base); branch/base by round "
              f"{', '.join(f'{r:.0%}' for r in ratios)}, median {statistics.median(ratios):.0%}; "
              f"load average {os.getloadavg()[0]:.2f}")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
