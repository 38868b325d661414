"""The seal rule's cost per message, beside the rest of the guard, in a real send.

    .venv/bin/python bench/bench_seals.py [--count N] [--rounds R]

Prepares a real cycle of N accounts (bill, finalize, render, plan — not timed), then sends it
R times (a fresh copy of the planned database each time; SQLite) through the real sender to
an in-process SMTP sink that discards, DKIM off (it is not what is measured). The sender
reports, in CPU time, the guard's steps (reading the bytes back, the fresh read, the verdict)
and, among them, the seal rule (reading the organization, contact, link and latest history
event of each recipient, recomputing their seals). Printed: µs of CPU per message for each,
and the seal rule's share of the guard — medians over the rounds. The contact history's
whole-chain check before the run is timed on its own (once per `run send`, not per message).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.scenario import build_scenario  # noqa: E402

from sealbill import keys  # noqa: E402
from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.sink import DiscardHandler, start_sink  # noqa: E402
from sealbill.mail.smtp import SmtpSender  # noqa: E402
from sealbill.pipeline.delivery.plan import plan_run  # noqa: E402
from sealbill.pipeline.delivery.send import SendOptions, send_run  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402
from sealbill.store.parties import contact_log  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="accounts (messages)")
    parser.add_argument("--rounds", type=int, default=3, help="sends, each on a fresh copy")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-seals-"))
    os.environ.setdefault("SEALBILL_KEYRING_DIR", str(work / "keyring"))
    try:
        master = work / "planned.sqlite"
        engine = create_engine(f"sqlite:///{master}")
        upgrade(engine)
        started = time.perf_counter()
        s = build_scenario(engine, accounts=args.count, files_dir=work / "files")
        plan_run(engine, s.org_id, s.run_id, actor="bench")
        engine.dispose()
        print(f"prepared {args.count} accounts in {time.perf_counter() - started:.1f} s "
              f"(not measured); load average {os.getloadavg()[0]:.2f}")
        sink = start_sink(DiscardHandler())
        rows = []
        for r in range(args.rounds):
            copy = work / f"round{r}.sqlite"
            shutil.copy(master, copy)
            engine = create_engine(f"sqlite:///{copy}")
            with engine.begin() as conn:
                t = time.process_time()
                report_log = contact_log.verify(conn, s.org_id)
                log_ms = (time.process_time() - t) * 1000
            assert report_log.ok, report_log.problems
            report = send_run(engine, s.org_id, s.run_id, signer=None,
                              transport=SmtpSender(SmtpConfig(host=sink.hostname,
                                                              port=sink.port)),
                              options=SendOptions(senders=1))
            assert report.status == "sent", report
            n = report.attempted
            row = {"guard_us": report.guard_seconds / n * 1e6,
                   "seal_us": report.seal_seconds / n * 1e6,
                   "cpu_us": report.cpu_seconds / n * 1e6, "log_ms": log_ms,
                   "events": report_log.rows}
            rows.append(row)
            print(f"round {r + 1}: {n} messages; CPU per message: sender {row['cpu_us']:.0f} µs,"
                  f" guard {row['guard_us']:.0f} µs, of which seal rule {row['seal_us']:.0f} µs"
                  f" ({row['seal_us'] / row['guard_us']:.0%} of the guard); whole contact "
                  f"history ({row['events']} events) checked once in {log_ms:.1f} ms")
            engine.dispose()
        sink.stop()
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"median: sender {med['cpu_us']:.0f} µs/message, guard {med['guard_us']:.0f}, "
              f"seal rule {med['seal_us']:.0f} ({med['seal_us'] / med['guard_us']:.0%} of the "
              f"guard, {med['seal_us'] / med['cpu_us']:.0%} of the sender); history check "
              f"{med['log_ms']:.1f} ms per run; load average {os.getloadavg()[0]:.2f}")
    finally:
        keys._BOUND.clear()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
