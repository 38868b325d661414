"""The send stage's statements and round trips a message, counted on the driver's cursors.

    .venv/bin/python bench/send_statements.py [--accounts 500] [--db postgresql|sqlite]
                                              [--top 25]

A cycle of ``--accounts`` accounts as ``bench_cycle.py`` runs it (seed, meter, rate, finalize,
render, plan), then the send with **one** sender process (so that every statement runs in this
process and is counted), to a discarding SMTP server in its own process. Counted during the send
only, on the DBAPI cursors (sealbill's prepared statements run there, beside SQLAlchemy):
- PostgreSQL (psycopg 3): each ``execute`` is one statement and one round trip; an
  ``executemany`` is one statement per parameter set and one round trip (psycopg pipelines it);
  a transaction adds two (``BEGIN``, sent by psycopg before its first statement, and
  ``COMMIT``);
- SQLite: each statement the library runs (``set_trace_callback``; no round trips).

Prints the totals a message and the statements by SQL text, most frequent first.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

import sqlalchemy as sa  # noqa: E402
from bench_cycle import PERIOD, seed_apart  # noqa: E402
from bench_delivery import Sink, _pick_sink  # noqa: E402
from cycle_db import analyze_all, cycle_database  # noqa: E402

from sealbill.documents.render import shutdown_pool  # noqa: E402
from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.smtp import SmtpSender  # noqa: E402
from sealbill.pipeline.billing.finalize import finalize_run  # noqa: E402
from sealbill.pipeline.billing.invoice import bill_period, period_bounds  # noqa: E402
from sealbill.pipeline.billing.render import render_run  # noqa: E402
from sealbill.pipeline.billing.usage_import import import_usage_file  # noqa: E402
from sealbill.pipeline.delivery.plan import plan_run  # noqa: E402
from sealbill.pipeline.delivery.send import SendOptions, send_run  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402


class Tally:
    def __init__(self) -> None:
        self.on = False
        self.statements: Counter[str] = Counter()
        self.round_trips = 0
        self.transactions = 0

    def statement(self, sql: str, count: int = 1, round_trips: int = 1) -> None:
        if self.on:
            self.statements[" ".join(sql.split())[:150]] += count
            self.round_trips += round_trips


TALLY = Tally()


@contextmanager
def counting_psycopg() -> Iterator[None]:
    import psycopg

    execute, executemany, commit = (psycopg.Cursor.execute, psycopg.Cursor.executemany,
                                    psycopg.Connection.commit)

    def counted_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        TALLY.statement(str(query))
        return execute(self, query, params, **kw)

    def counted_executemany(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        params_seq = list(params_seq)
        TALLY.statement(str(query), len(params_seq))
        return executemany(self, query, params_seq, **kw)

    def counted_commit(self: Any) -> None:
        if TALLY.on:  # BEGIN (sent before the transaction's first statement) and COMMIT
            TALLY.transactions += 1
            TALLY.round_trips += 2
        commit(self)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
    psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def trace_sqlite(engine: sa.Engine) -> None:
    """Each statement SQLite runs; the trace gives it with its values bound, taken out here
    so that the executions of one statement count together."""
    @sa.event.listens_for(engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(
            lambda sql: TALLY.statement(_LITERAL.sub("?", sql), 1, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--db", default="postgresql", choices=["sqlite", "postgresql"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sealbill-statements-"))
    sink = Sink(_pick_sink("auto"))
    try:
        with cycle_database(args.db, workdir) as db, counting_psycopg():
            engine = create_engine(db.url)
            if args.db == "sqlite":
                trace_sqlite(engine)
            upgrade(engine)
            engine.dispose()
            start, _ = period_bounds(PERIOD)
            seeded = seed_apart(db.url, args.accounts, date(start.year, start.month, 1),
                                workdir)
            if db.server:
                analyze_all(db.url)
            org_id = int(seeded["org_id"])
            import_usage_file(engine, org_id, Path(seeded["usage_file"]))
            billed = bill_period(engine, org_id, PERIOD, actor="bench")
            assert billed.run_id is not None
            finalize_run(engine, org_id, billed.run_id, issue_date=start)
            render_run(engine, org_id, billed.run_id, workdir / "files")
            shutdown_pool()
            plan_run(engine, org_id, billed.run_id, actor="bench")
            signer = DkimSigner(DkimKey("bench", "acme-cloud.example",
                                        generate_key(workdir / "dkim.pem")))
            TALLY.on = True
            sent = send_run(engine, org_id, billed.run_id,
                            transport=SmtpSender(SmtpConfig(port=sink.port, timeout=30)),
                            signer=signer, options=SendOptions(senders=1))
            TALLY.on = False
            engine.dispose()
    finally:
        sink.stop()
    messages = sent.counts.get("sent", 0)
    total = sum(TALLY.statements.values())
    print(f"{args.db}, {args.accounts} accounts: {messages} messages sent ({sent.status}), "
          f"{total} statements ({total / messages:.2f} a message), {TALLY.round_trips} round "
          f"trips ({TALLY.round_trips / messages:.2f} a message), {TALLY.transactions} "
          f"transactions")
    for sql, n in TALLY.statements.most_common(args.top):
        print(f"{n / messages:7.3f}  {sql}")


if __name__ == "__main__":
    main()
