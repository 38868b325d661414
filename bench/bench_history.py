"""The seal checks of two source trees, side by side: the whole contact-history check
(`contact_log.verify`), the delivery ledger's verify walk and append, the per-message seal
verdict.

    .venv/bin/python bench/bench_history.py --base /tmp/base-tree [--events N] [--rounds R]
        [--db sqlite|postgresql] [--checks history,ledger,append,verdict] [--ledger-rows N]

Seeds one database (not timed; ``--db postgresql``: a throwaway cluster of the PostgreSQL
installed here, PostgreSQL's defaults, ``tests/support/pgcluster.py``): an organization with
100 accounts (the scenario's import: each contact added, linked and verified), then N events
appended through ``contact_log.append_many`` in transactions of 5,000 — a mix of added,
address changed (old and new values, non-ASCII), linked and verified (account, role, method,
reason with a dash), an actor with a quote and a cedilla; with ``ledger``/``append`` among the
checks, ``--ledger-rows`` delivery ledger rows appended through ``ledger.append_many`` in
batches of 500 (one or two recipients, one the archive copy; the data categories of an
invoice). Then, R rounds, alternating which tree goes first, each check of each tree runs in a
fresh process (``PYTHONPATH`` = that tree's ``src``) on the same database and keyring: CPU
seconds of the measured part itself (``time.process_time``; wall seconds beside, which on
PostgreSQL include the server's part), µs of CPU a row (``history``: an event; ``ledger``: a
ledger row verified; ``append``: a ledger row appended — 20,000 in batches of 500, rolled back;
``verdict``: a message judged by ``seal_guard.verdict``, every account's billing contacts'
evidence read once, then judged 100 times, the two trees' verdicts alike — some messages are
refused: the events seeded move some links' latest event), and that nothing else was found
wrong. Printed: each
run, the medians, each round's branch/base ratio (its two runs back to back), the load
average.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Run in the child, with only the measured tree's src on the path; prints cpu, wall, rows and
# the problems found. The keyring is read before the clock starts.
CHILD_HEAD = """
import json, os, sys, time
import sqlalchemy as sa
from sealbill.store.db import create_engine
from sealbill.store.parties import contact_log
engine = create_engine(sys.argv[1])
org_id = int(sys.argv[2])
with engine.connect() as conn:
    contact_log.for_connection(conn)
"""
# a whole chain's verify walk: {verify} is the function
WALK = """
with engine.begin() as conn:
    started, wall = time.process_time(), time.perf_counter()
    report = {verify}(conn, org_id)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
rows, problems = report.rows, len(report.problems)
"""
CHILDREN = {
    "history": WALK.format(verify="contact_log.verify"),
    "ledger": "from sealbill.store.delivery import ledger" + WALK.format(verify="ledger.verify"),
    "append": """
sys.path.insert(0, sys.argv[3])  # this bench's tree (cwd is the measured one)
from bench.bench_history import ledger_entries
from sealbill.store.delivery import ledger
entries = ledger_entries(20000, 10**9)
with engine.connect() as conn:
    transaction = conn.begin()
    started, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(entries), 500):
        ledger.append_many(conn, org_id, entries[start:start + 500])
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    transaction.rollback()
rows, problems = len(entries), 0
""",
    "verdict": """
from sealbill.domain import seal_guard
from sealbill.store.delivery import seal_facts
from sealbill.store.schema import contact_links, contacts, organizations
with engine.begin() as conn:
    keys = contact_log.for_connection(conn).keys
    sender = conn.execute(sa.select(organizations.c.sender_email)).scalar_one()
    billing = conn.execute(sa.select(contact_links.c.account_id, contacts.c.id, contacts.c.email)
                           .join(contacts, contacts.c.id == contact_links.c.contact_id)
                           .where(contact_links.c.role == "billing",
                                  contact_links.c.status == "verified")).all()
    envelopes = {}
    for account_id, contact_id, email in billing:
        envelopes.setdefault(int(account_id), []).append((int(contact_id), email))
    messages = [(account_id, tuple(envelope), [e for _, e in envelope],
                 seal_facts.evidence(conn, org_id, account_id, [c for c, _ in envelope]))
                for account_id, envelope in envelopes.items()]
started, wall = time.process_time(), time.perf_counter()
found = []
for _ in range(100):
    for account_id, envelope, rcpt_to, evidence in messages:
        found.append(seal_guard.verdict(keys, account_id, envelope, sender, rcpt_to, evidence))
cpu, wall = time.process_time() - started, time.perf_counter() - wall
rows, problems = 100 * len(messages), 0
# the events seeded after the import move some links' latest event off "verified": those
# messages are refused, and both trees must refuse them alike (compared by digest)
import hashlib
judged = sum(1 for violations in found if violations)
digest = hashlib.sha256(repr(found).encode()).hexdigest()[:16]
""",
}
CHILD_TAIL = """
print(json.dumps({"cpu": cpu, "wall": wall, "rows": rows, "problems": problems,
                  "refused": globals().get("judged", 0), "digest": globals().get("digest")}))
"""
UNIT = {"history": "an event", "ledger": "a ledger row", "append": "a row appended",
        "verdict": "a message"}


def ledger_entries(count: int, first: int) -> list[Any]:
    """``count`` ledger entries as a run's sender writes them (Message-IDs from ``first``)."""
    from sealbill.store.delivery import ledger

    at = datetime(2026, 11, 2, 8, tzinfo=UTC)
    categories = ["account_reference", "amount", "invoice", "invoice_lines", "name",
                  "postal_address"]
    return [ledger.LedgerEntry(
        message_id=f"<{first + i}.run7@sealbill.example>", run_id=7, account_id=1 + i % 100,
        account_reference=f"ACC-{i % 100:05d}", invoice_id=first + i,
        invoice_number=f"INV-2026-11-{i:06d}",
        recipients=[{"contact_id": 1 + i % 150, "email": f"billing{i % 150}@client.example"}]
        + ([{"contact_id": None, "email": "archive@issuer.example", "role": "archive"}]
           if i % 3 == 0 else []),
        data_categories=categories, attachment_sha256=f"{i:064x}", body_sha256=f"{-i % 97:064x}",
        queued_at=at + timedelta(seconds=i), sent_at=at + timedelta(seconds=i, microseconds=i))
        for i in range(count)]


def seed(url: str, work: Path, events: int, ledger_rows: int) -> int:
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
    from sealbill.store.delivery import ledger

    entries = ledger_entries(ledger_rows, 1)
    for start in range(0, ledger_rows, 500):
        with engine.begin() as conn:
            ledger.append_many(conn, org_id, entries[start:start + 500])
    engine.dispose()
    return org_id


def measure(tree: Path, url: str, org_id: int, check: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    program = CHILD_HEAD + CHILDREN[check] + CHILD_TAIL
    out = subprocess.run([sys.executable, "-c", program, url, str(org_id), str(ROOT)], env=env,
                         cwd=tree,
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result["problems"]:
        raise SystemExit(f"{tree}: {check} found {result['problems']} problems")
    return result


def compare(check: str, trees: dict[str, Path], url: str, org_id: int, rounds: int) -> None:
    """R rounds of one check in each tree, alternating which goes first; printed as it runs."""
    unit = UNIT[check]
    runs: dict[str, list[float]] = {name: [] for name in trees}
    digests: set[object] = set()
    for r in range(rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for name in order:
            result = measure(trees[name], url, org_id, check)
            per_row = result["cpu"] / result["rows"] * 1e6
            runs[name].append(per_row)
            digests.add(result["digest"])
            if len(digests) > 1:
                raise SystemExit(f"{check}: the trees' verdicts differ")
            print(f"{check} round {r + 1} {name:6}: {int(result['rows'])} × {unit}, "
                  f"{result['cpu']:.2f} s CPU ({result['wall']:.2f} s wall), "
                  f"{per_row:.1f} µs {unit}, {int(result['refused'])} refused; load "
                  f"average {os.getloadavg()[0]:.2f}",
                  flush=True)
    base, branch = (statistics.median(runs[name]) for name in trees)
    # each round's pair ran back to back: its ratio is less shaken by the host's load
    ratios = [b / a for a, b in zip(runs["base"], runs["branch"], strict=True)]
    print(f"{check}: median µs {unit}: base {base:.1f}, branch {branch:.1f} "
          f"({branch / base:.0%} of base); branch/base by round "
          f"{', '.join(f'{r:.0%}' for r in ratios)}, median {statistics.median(ratios):.0%}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the baseline tree")
    parser.add_argument("--branch", type=Path, default=ROOT, help="the tree measured against it")
    parser.add_argument("--events", type=int, default=150_000, help="events appended")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--checks", default="history",
                        help="comma-separated: history, ledger, append, verdict")
    parser.add_argument("--ledger-rows", type=int, default=100_000,
                        help="ledger rows appended (with ledger or append among the checks)")
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
        checks = args.checks.split(",")
        ledger_rows = args.ledger_rows if {"ledger", "append"} & set(checks) else 0
        org_id = seed(url, work, args.events, ledger_rows)
        print(f"{args.db}: seeded {args.events} events, {ledger_rows} ledger rows in "
              f"{time.perf_counter() - started:.1f} s (not measured); load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        for check in checks:
            compare(check, {"base": args.base.resolve(), "branch": args.branch.resolve()},
                    url, org_id, args.rounds)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
