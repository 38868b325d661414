"""Delivery throughput: N rendered invoices, DKIM (OpenSSL), guard and ledger, to a loopback sink.

    .venv/bin/python bench/bench_delivery.py [N=10000]

Prepares a real billing cycle of N accounts (bill, finalize, render — timed separately, not part
of the figure), plans it, copies the database, then sends it twice to an aiosmtpd sink that
discards (in its own process, so it does not share the sender's interpreter):
1. the real sender: guard + DKIM + ledger;
2. the same run with the guard's two steps (fresh facts, check) replaced by no-ops — the bench
   only, through monkeypatching; the product has no switch to turn the guard off.
Prints messages/s for both and the guard's share, and DKIM's cost per signature both ways.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
import time
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
from sealbill.pipeline import send as send_module  # noqa: E402
from sealbill.pipeline.plan import plan_run  # noqa: E402
from sealbill.pipeline.render import render_run  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402


def _serve(port: int) -> None:
    controller = start_sink(DiscardHandler(), port=port)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def _send(db: Path, org_id: int, run_id: int, port: int, signer: DkimSigner) -> Any:
    engine = create_engine(f"sqlite:///{db}")
    transport = SmtpSender(SmtpConfig(port=port, timeout=30))
    report = send_module.send_run(engine, org_id, run_id, transport=transport, signer=signer)
    engine.dispose()
    return report


def _dkim_cost(signer_key: DkimKey, sample: bytes) -> tuple[float, float]:
    out = []
    for openssl in (True, False):
        signer = DkimSigner(signer_key, use_openssl=openssl)
        started = time.perf_counter()
        for _ in range(50):
            signer.sign(sample)
        out.append((time.perf_counter() - started) / 50 * 1000)
    return out[0], out[1]


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    db = work / "db.sqlite"
    engine = create_engine(f"sqlite:///{db}")
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
    shutil.copyfile(db, work / "noguard.sqlite")

    key = DkimKey("bench", "acme-cloud.example", generate_key(work / "dkim.pem"))
    signer = DkimSigner(key)
    port = free_port()
    sink = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    sink.start()
    time.sleep(1.0)
    try:
        real = _send(db, scenario.org_id, scenario.run_id, port, signer)
        with_guard = n / real.seconds
        print(f"with guard:    {n} messages in {real.seconds:.1f} s = {with_guard:.0f} msg/s "
              f"(status {real.status}, guard {real.guard_seconds:.1f} s = "
              f"{100 * real.guard_seconds / real.seconds:.1f} % of the run)")
        send_module.box.fresh_facts = lambda *a, **k: None  # type: ignore[assignment,return-value]
        send_module.guard.check = lambda *a, **k: []  # type: ignore[assignment]
        bare = _send(work / "noguard.sqlite", scenario.org_id, scenario.run_id, port, signer)
        without = n / bare.seconds
        print(f"without guard: {n} messages in {bare.seconds:.1f} s = {without:.0f} msg/s "
              f"(status {bare.status})")
        print(f"guard cost: {100 * (1 - with_guard / without):.1f} % of throughput")
    finally:
        sink.terminate()
        send_module.guard.check = guard.check
    sample = (work / "files" / "documents").glob("*/*.pdf")
    pdf = next(iter(sample)).read_bytes()
    message = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n\r\n" + pdf[:50000]
    openssl_ms, pure_ms = _dkim_cost(key, message)
    print(f"DKIM per signature: {openssl_ms:.2f} ms via cryptography, {pure_ms:.2f} ms pure "
          "dkimpy")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
