"""Delivery throughput: N rendered invoices, DKIM (OpenSSL), guard and ledger, to a loopback sink.

    .venv/bin/python bench/bench_delivery.py [--count N] [--cache DIR] [--sink KIND]
                                             [--skip-noguard] [--senders N] [--rounds N]
                                             [--db sqlite|postgresql] [--batch N]

Prepares a real billing cycle of N accounts (bill, finalize, render — timed separately, not part
of the figure), plans it, copies the database, then sends it twice to a sink that discards, in
its own process so that it does not share the sender's interpreter, with ``--senders`` sender
processes after the canary (default 2, one per core of this machine):
1. the real sender: guard + DKIM + ledger;
2. the same run with the guard's steps (examining the bytes, the fresh read, the verdict)
   replaced by no-ops — the bench only, through monkeypatching; the product has no switch to
   turn the guard off.
Prints messages/s for both, the guard's share, the CPU time the sender used per message (on a
shared machine wall time depends on the neighbours, CPU time much less) and DKIM's cost per
signature both ways. ``--rounds N`` repeats the pair N times, alternating, and prints the
medians: this host's speed drifts by up to 2x within an hour, so each round starts with the
time of a DKIM signature as a gauge, and only figures of the same round are compared.

``--batch N``: the messages a sender judges in one transaction and sends before writing their
outcomes (default 100, the product's; not passed to a sender that predates batches unless given).

``--cache DIR`` keeps the prepared (planned, not yet sent) cycle in DIR and reuses it on the
next run with the same count, so that iterating on the sender does not re-render 10,000 PDFs.
``--sink``: ``aiosmtpd`` (sealbill's own ``DiscardHandler``, pure Python, slow: it costs about
as much CPU per message as the sender) or ``postfix`` (Postfix's ``smtp-sink``, in C, as the
issue suggests: Debian package ``postfix``, installed with "No configuration" it starts no
mail server); ``auto`` (the default) takes ``smtp-sink`` when it is installed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.scenario import build_scenario  # noqa: E402

from sealbill.domain import guard  # noqa: E402
from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.sink import DiscardHandler, free_port, start_sink  # noqa: E402
from sealbill.mail.smtp import SmtpSender  # noqa: E402
from sealbill.pipeline.billing.render import render_run  # noqa: E402
from sealbill.pipeline.delivery import examine as reader  # noqa: E402
from sealbill.pipeline.delivery import send as send_module  # noqa: E402
from sealbill.pipeline.delivery import send_judging  # noqa: E402
from sealbill.pipeline.delivery.plan import plan_run  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.delivery import outbox as box  # noqa: E402
from sealbill.store.delivery import outbox_batches as batches  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402

SMTP_SINK_PATHS = ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink")


def _serve(port: int) -> None:
    controller = start_sink(DiscardHandler(), port=port)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


class Sink:
    """A discarding SMTP server in its own process."""

    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.kind = kind
        self._proc: Any
        if kind == "postfix":
            binary = next(p for p in SMTP_SINK_PATHS if Path(p).exists())
            # -c: count, -u: run as (needed as root), backlog 100; answers 250 to everything.
            self._proc = subprocess.Popen([binary, "-u", "nobody", f"127.0.0.1:{self.port}",
                                           "100"], stdout=subprocess.DEVNULL)
        else:
            self._proc = multiprocessing.Process(target=_serve, args=(self.port,), daemon=True)
            self._proc.start()
        time.sleep(1.0)

    def stop(self) -> None:
        self._proc.terminate()


def _pick_sink(kind: str) -> str:
    if kind != "auto":
        return kind
    return "postfix" if any(Path(p).exists() for p in SMTP_SINK_PATHS) else "aiosmtpd"


BATCH: dict[str, int] = {}  # --batch, when given (main's SendOptions has no batch)


def _send(url: str, org_id: int, run_id: int, port: int,
          signer: DkimSigner, senders: int) -> tuple[Any, float]:
    engine = create_engine(url)
    config = SmtpConfig(port=port, timeout=30)
    report = send_module.send_run(
        engine, org_id, run_id, transport=SmtpSender(config), signer=signer,
        options=send_module.SendOptions(senders=senders, **BATCH),
        transport_factory=lambda: SmtpSender(config))
    engine.dispose()
    # the senders' own CPU time (all processes), whatever their neighbours do
    return report, report.cpu_seconds


def _cpu(used: float, n: int) -> str:
    return f"CPU per message: sender {1000 * used / n:.2f} ms"


def _dkim_cost(signer_key: DkimKey, sample: bytes) -> tuple[float, float]:
    out = []
    for openssl in (True, False):
        signer = DkimSigner(signer_key, use_openssl=openssl)
        started = time.perf_counter()
        for _ in range(50):
            signer.sign(sample)
        out.append((time.perf_counter() - started) / 50 * 1000)
    return out[0], out[1]


class SqliteCopies:
    """The planned run is ``planned.sqlite`` in the work directory; each send gets a copy."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.planned_url = f"sqlite:///{work / 'db.sqlite'}"

    def keep_planned(self) -> None:
        (self.work / "db.sqlite").rename(self.work / "planned.sqlite")

    def has_planned(self) -> bool:
        return (self.work / "planned.sqlite").exists()

    def fresh(self, name: str) -> str:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.work / name}.sqlite{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.work / "planned.sqlite", self.work / f"{name}.sqlite")
        return f"sqlite:///{self.work / name}.sqlite"

    def close(self) -> None:
        pass


class PostgresCopies:
    """A throwaway PostgreSQL cluster at its default durability (fsync, synchronous commit on):
    the planned run is database ``planned``; each send gets ``CREATE DATABASE … TEMPLATE
    planned``. The cluster goes with the process; the planned run is kept in the work
    directory as a ``pg_dump`` and restored from it on the next invocation."""

    def __init__(self, work: Path) -> None:
        from tests.support.pgcluster import start_cluster

        self.cluster = start_cluster(durable=True)
        self.dump = work / "planned.pgdump"
        self.base = self.cluster.url.rsplit("/", 1)[0]
        self._admin("planned")
        self.planned_url = f"{self.base}/planned"
        if self.dump.exists():
            self._client("pg_restore", "--no-owner", "-d", "planned", str(self.dump))
            # a restored database has no planner statistics (the copies inherit these)
            engine = create_engine(self.planned_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
            engine.dispose()

    def _client(self, tool: str, *args: str) -> bytes:
        return subprocess.run([str(self.cluster.bindir / tool), "-h", "127.0.0.1", "-p",
                               str(self.cluster.port), "-U", "sealbill", *args],
                              check=True, capture_output=True).stdout

    def _admin(self, create: str, template: str | None = None) -> None:
        admin = create_engine(self.cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{create}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{create}"'
                                 + (f' TEMPLATE "{template}"' if template else ""))
        admin.dispose()

    def keep_planned(self) -> None:
        self.dump.write_bytes(self._client("pg_dump", "-Fc", "planned"))

    def has_planned(self) -> bool:
        return self.dump.exists()

    def fresh(self, name: str) -> str:
        self._admin(name, template="planned")
        return f"{self.base}/{name}"

    def close(self) -> None:
        self.cluster.stop()


@contextmanager
def _guard_bypassed() -> Iterator[None]:
    """The bench only: the guard's steps (reading the bytes back, the fresh read, the verdict,
    the seal rule) replaced by no-ops, to see what they cost. The product has no switch to
    skip them."""
    saved = reader.examine, batches.send_facts_many, guard.verdict
    sealed = send_judging.Judge._sealed
    send_judging.Judge._sealed = lambda *a, **k: []  # type: ignore[method-assign]
    nothing = guard.Examined(guard.Outgoing(b"", ()), None, guard.XmlFacts(), {})
    reader.examine = lambda *a, **k: nothing
    # (the fresh read also carries the kill switch: skipped here too, a few µs)
    batches.send_facts_many = lambda conn, org, items, *a: [  # type: ignore[assignment]
        box.SendFacts(None, None, frozenset()) for _ in items]  # type: ignore[arg-type]
    guard.verdict = lambda *a, **k: []
    try:
        yield
    finally:
        reader.examine, batches.send_facts_many, guard.verdict = saved
        send_judging.Judge._sealed = sealed  # type: ignore[method-assign]


def _round(dbs: SqliteCopies | PostgresCopies, org_id: int, run_id: int, port: int,
           signer: DkimSigner, senders: int, n: int, skip_noguard: bool) -> dict[str, float]:
    """One send with the guard and one without, each on a fresh copy of the planned run; the
    DKIM time of one signature just before, as a gauge of how fast the machine is now."""
    row: dict[str, float] = {"dkim_ms": _dkim_gauge(signer)}
    real, real_cpu = _send(dbs.fresh("guard"), org_id, run_id, port, signer, senders)
    if real.counts != {"sent": n}:
        raise SystemExit(f"the run did not deliver everything: {real.status} {real.counts}")
    row.update(with_guard=n / real.seconds, cpu_ms=1000 * real_cpu / n,
               guard_ms=1000 * real.guard_seconds / n,
               judged_again=float(getattr(real, "judged_again", 0)))
    if not skip_noguard:
        with _guard_bypassed():
            bare, bare_cpu = _send(dbs.fresh("noguard"), org_id, run_id, port, signer,
                                   senders)
        row.update(without=n / bare.seconds, bare_cpu_ms=1000 * bare_cpu / n)
        row.update(cost_throughput=100 * (1 - row["with_guard"] / row["without"]),
                   cost_cpu=100 * (1 - row["bare_cpu_ms"] / row["cpu_ms"]))
    return row


def _dkim_gauge(signer: DkimSigner) -> float:
    message = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n\r\n" + b"x" * 40000
    started = time.process_time()
    for _ in range(30):
        signer.sign(message)
    return (time.process_time() - started) / 30 * 1000


def _print_round(r: int, row: dict[str, float]) -> None:
    print(f"round {r} (DKIM {row['dkim_ms']:.2f} ms/signature):")
    print(f"  with guard:    {row['with_guard']:.0f} msg/s; sender CPU {row['cpu_ms']:.2f} ms/msg,"
          f" guard {row['guard_ms']:.2f} ms/msg = {100 * row['guard_ms'] / row['cpu_ms']:.1f} %;"
          f" judged again (batch older than 1 s): {row['judged_again']:.0f}")
    if "without" in row:
        print(f"  without guard: {row['without']:.0f} msg/s; sender CPU "
              f"{row['bare_cpu_ms']:.2f} ms/msg")
        print(f"  guard cost: {row['cost_throughput']:.1f} % of throughput, "
              f"{row['cost_cpu']:.1f} % of the senders' CPU")


def _print_medians(rows: list[dict[str, float]]) -> None:
    keys = [k for k in rows[0] if all(k in row for row in rows)]
    med = {k: statistics.median(row[k] for row in rows) for k in keys}
    print("median of the rounds: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))


def prepare(n: int, work: Path, dbs: SqliteCopies | PostgresCopies) -> tuple[int, int]:
    """Bill, finalize, render and plan a cycle of ``n`` accounts (documents under ``work``);
    ``dbs`` keeps the planned run for the copies each send starts from."""
    engine = create_engine(dbs.planned_url)
    upgrade(engine)
    t0 = time.perf_counter()
    scenario = build_scenario(engine, accounts=n, files_dir=work / "files", render=False)
    t1 = time.perf_counter()
    render_run(engine, scenario.org_id, scenario.run_id, work / "files" / "documents")
    t2 = time.perf_counter()
    plan = plan_run(engine, scenario.org_id, scenario.run_id, actor="bench")
    t3 = time.perf_counter()
    engine.dispose()
    print(f"prepare: bill+finalize {t1 - t0:.1f} s, render {t2 - t1:.1f} s, "
          f"plan {t3 - t2:.2f} s ({plan.verdict})")
    dbs.keep_planned()
    (work / "scenario.json").write_text(json.dumps(
        {"count": n, "org_id": scenario.org_id, "run_id": scenario.run_id}))
    return scenario.org_id, scenario.run_id


def _cached(work: Path, n: int, dbs: SqliteCopies | PostgresCopies) -> tuple[int, int] | None:
    meta = work / "scenario.json"
    if not meta.exists() or not dbs.has_planned():
        return None
    data = json.loads(meta.read_text())
    if data["count"] != n:
        return None
    return int(data["org_id"]), int(data["run_id"])


def main(n: int, cache: Path | None, sink_kind: str, skip_noguard: bool,
         senders: int, rounds: int, db: str) -> None:
    work = cache or Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    # the sealing key and checkpoints beside the prepared cycle (kept with --cache)
    os.environ.setdefault("SEALBILL_KEYRING_DIR", str(work / "keyring"))
    if db == "postgresql":
        work = work / "postgresql"  # its documents apart from the SQLite cache's
    work.mkdir(parents=True, exist_ok=True)
    dbs = PostgresCopies(work) if db == "postgresql" else SqliteCopies(work)
    try:
        found = _cached(work, n, dbs) if cache else None
        if found is None:
            if cache:
                shutil.rmtree(work / "files", ignore_errors=True)
            org_id, run_id = prepare(n, work, dbs)
        else:
            org_id, run_id = found
            print(f"prepare: reusing the planned cycle in {work}")
        _measure(work, dbs, org_id, run_id, n, sink_kind, skip_noguard, senders, rounds)
    finally:
        dbs.close()
    if cache is None:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, dbs: SqliteCopies | PostgresCopies, org_id: int, run_id: int, n: int,
             sink_kind: str, skip_noguard: bool, senders: int, rounds: int) -> None:
    # Right after rendering the documents are in the page cache; a run from --cache may find
    # them evicted (this VM reclaims idle page cache within minutes) and would time the disk.
    warm = sum(len(f.read_bytes()) for f in (work / "files" / "documents").rglob("*")
               if f.is_file())
    print(f"documents read once before timing: {warm / 1e6:.0f} MB")
    key = DkimKey("bench", "acme-cloud.example", generate_key(work / "dkim.pem"))
    signer = DkimSigner(key)
    sink = Sink(_pick_sink(sink_kind))
    print(f"database: {type(dbs).__name__}; sink: {sink.kind}; senders: {senders} process(es) "
          f"after the canary; {rounds} round(s), each: with guard, then without")
    rows: list[dict[str, float]] = []
    try:
        for r in range(1, rounds + 1):
            row = _round(dbs, org_id, run_id, sink.port, signer, senders, n, skip_noguard)
            rows.append(row)
            _print_round(r, row)
    finally:
        sink.stop()
    if len(rows) > 1:
        _print_medians(rows)
    sample = (work / "files" / "documents").glob("*/*.pdf")
    pdf = next(iter(sample)).read_bytes()
    message = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n\r\n" + pdf[:50000]
    openssl_ms, pure_ms = _dkim_cost(key, message)
    print(f"DKIM per signature: {openssl_ms:.2f} ms via cryptography, {pure_ms:.2f} ms pure "
          "dkimpy")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=None)
    parser.add_argument("--count", dest="count_opt", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--sink", choices=("auto", "aiosmtpd", "postfix"), default="auto")
    parser.add_argument("--skip-noguard", action="store_true")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a throwaway cluster at default durability")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate with/without guard this many times; medians at the end")
    parser.add_argument("--senders", type=int, default=2,
                        help="sender processes after the canary (default 2: one per core)")
    parser.add_argument("--batch", type=int, default=None,
                        help="messages a sender judges in one transaction (default: 100)")
    args = parser.parse_args()
    if args.batch is not None:
        BATCH["batch"] = args.batch
    main(args.count_opt or args.count or 10_000, args.cache, args.sink, args.skip_noguard,
         args.senders, args.rounds, args.db)
