"""The whole billing cycle, as an operator waits for it, and the library pipeline beside it.

    .venv/bin/python bench/bench_cycle.py [--accounts 100000] [--db sqlite|postgresql]
                                          [--senders 2] [--sample 200] [--workdir DIR]
                                          [--sink auto|aiosmtpd|postfix]
                                          [--relay none|plain|starttls|smtps] [--json]

One run on one database (``--db``: an SQLite file in the work folder, the default, or a
throwaway PostgreSQL cluster — below): seed (the demo's organization: plans of every charge
model, accounts in several countries and currencies, one verified billing contact each and an
accountant on some), meter (the month's usage from JSONL), rate + invoice, finalize, render
(PDF/A-3b Factur-X, mail bodies; compiled template, Typst for what does not fit — counted),
plan, guard + DKIM + send to a loopback SMTP server in its own process (``--senders`` sender
processes) + ledger, and the ledger verified at the end. For each stage: wall and CPU seconds
(this process and its reaped children: the render pool is shut down at the end of its stage,
the senders are forked and reaped, so their CPU is counted), and the peak RSS: this process's
during the stage (the kernel's high-water mark is reset at each stage's start, so the seed's
peak does not hide the cycle's) and the largest reaped child's so far. The cycle's peak is the
largest of those over the cycle's stages; the seed's is printed apart.

``--relay``: ``none`` (the default) sends straight to the sink; ``plain``, ``starttls`` and
``smtps`` send through a real MTA instead — a throwaway Postfix on loopback
(tests/support/postfix.py: its own configuration and queue, needs Postfix and root; ``make
postfix``) that relays to the sink. ``starttls`` logs in (SASL AUTH over STARTTLS, the
relay's ``auth`` listener: a client that did not log in is refused), ``smtps`` is TLS from the
first byte without AUTH (the relay's ``smtps`` listener has none). The send stage then ends
when Postfix has answered 250 for every message (queued and synced by Postfix); Postfix's
own CPU is not in the figures (it is the far side, as the sink is).

``--db postgresql``: a throwaway cluster of the PostgreSQL installed here, with its default
durability, stopped at the end (bench/cycle_db.py, which says how); the same seed, usage and
sink, and an ``ANALYZE`` after the seed. The header gives the server's version and settings;
the server's CPU (all the cluster's processes) is the ``server CPU s`` column, and the cycle's
line gives the CPU seconds without it and with it (on SQLite the database is in-process).

Then, on ``--sample`` invoices of the same run, the straightforward pipeline of the same
libraries in two processes, no database, no guard: Typst → ``facturx.generate_from_binary`` →
``EmailMessage`` → dkimpy → smtplib, to the same SMTP server with the same security and login
(its socket has ``TCP_NODELAY`` too, so that over TLS the ratio compares the pipelines, not
Nagle's algorithm).

Prints a Markdown table (and ``--json`` the figures); paste it into bench/RESULTS.md with the
machine, load average and date. The seed and the usage file are not part of the cycle figure
(an operator's accounts and usage exist before the cycle starts); they are printed apart.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import multiprocessing
import os
import resource
import shutil
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from bench_delivery import Sink, _pick_sink  # noqa: E402
from cycle_db import Database, analyze_all, cycle_database  # noqa: E402
from cycle_report import print_summary, summarize  # noqa: E402
from tests.support.postfix import (  # noqa: E402
    SASL_PASSWORD,
    SASL_USER,
    PostfixRelay,
    postfix_available,
    sasl_available,
    throwaway_postfix,
)

from sealbill.demo.seed import seed_organization  # noqa: E402
from sealbill.documents.render import shutdown_pool  # noqa: E402
from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.smtp import SmtpSender  # noqa: E402
from sealbill.pipeline.billing.finalize import finalize_run  # noqa: E402
from sealbill.pipeline.billing.invoice import bill_period, period_bounds  # noqa: E402
from sealbill.pipeline.billing.render import RenderCounts, render_run  # noqa: E402
from sealbill.pipeline.billing.usage_import import import_usage_file  # noqa: E402
from sealbill.pipeline.delivery.plan import plan_run  # noqa: E402
from sealbill.pipeline.delivery.send import SendOptions, send_run  # noqa: E402
from sealbill.store.billing.invoices import load_invoice  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.delivery import ledger  # noqa: E402
from sealbill.store.migrate import upgrade  # noqa: E402

PERIOD = "2026-11"
SELECTOR, DOMAIN = "bench", "acme-cloud.example"
# --relay -> (the throwaway Postfix's listener, SmtpConfig.security, log in)
RELAYS: Final = {"plain": ("plain", "none", False), "starttls": ("auth", "starttls", True),
                 "smtps": ("smtps", "ssl", False)}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _hwm_mb(pid: int | str = "self") -> float:
    """A process's peak RSS (Linux ``VmHWM``; since the last :func:`_reset_peak` for this
    one); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as found:
            children = [int(c) for c in found.read().split()]
    except OSError:
        return []
    return children + [d for c in children for d in _descendants(c)]


class ChildrenPeak(threading.Thread):
    """The largest peak RSS of any descendant process (render workers, rating workers, forked
    senders) seen since :meth:`reset`, sampled every 0.2 s: a child's ``VmHWM`` is its own
    high-water mark, so a sample shortly before it exits sees its peak. (``getrusage`` would
    keep the largest child ever reaped, the seed's process included, for every later stage.)"""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.ignored: set[int] = set()

    def reset(self) -> None:
        self.peak = 0.0

    def run(self) -> None:
        while True:
            for pid in _descendants(os.getpid()):
                if pid not in self.ignored:
                    self.peak = max(self.peak, _hwm_mb(pid))
            time.sleep(0.2)


CHILDREN = ChildrenPeak()


def _reset_peak() -> None:
    """Start a stage's peak afresh: what the previous stage freed is given back first, then
    the kernel's high-water mark is reset (``/proc/self/clear_refs``), so that each stage's
    peak is its own and the seed's does not hide the cycle's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


@dataclass
class Stages:
    rows: list[dict[str, Any]] = field(default_factory=list)
    server: Callable[[], float] | None = None  # a database server's CPU seconds so far
    _wall: float = 0.0
    _cpu: float = 0.0
    _server: float = 0.0

    def start(self) -> None:
        _reset_peak()
        CHILDREN.reset()
        self._wall, self._cpu = time.perf_counter(), _cpu()
        self._server = self.server() if self.server else 0.0

    def done(self, name: str, **facts: Any) -> None:
        server = {"server_cpu_s": round(self.server() - self._server, 2)} if self.server else {}
        self.rows.append({"stage": name, "wall_s": round(time.perf_counter() - self._wall, 2),
                          "cpu_s": round(_cpu() - self._cpu, 2), **server,
                          "peak_rss_mb": round(_hwm_mb()),
                          "children_peak_mb": round(CHILDREN.peak), **facts})
        print(f"{time.strftime('%H:%M:%S')} {self.rows[-1]}", file=sys.stderr, flush=True)


def _seed(url: str, accounts: int, start: date, workdir: Path, out: Any) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        seeded = seed_organization(conn, accounts, start, workdir)
    engine.dispose()
    out.send({"org_id": int(seeded["org_id"]), "usage_file": str(seeded["usage_file"]),
              "peak_rss_mb": _hwm_mb()})


def seed_apart(url: str, accounts: int, start: date, workdir: Path) -> dict[str, Any]:
    """The seed in a process of its own (forked, reaped: its CPU is counted in its stage),
    so that what it leaves in memory is not the cycle's starting point."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_seed, args=(url, accounts, start, workdir, send))
    child.start()
    send.close()  # a seed that dies closes the pipe: recv raises instead of waiting
    seeded: dict[str, Any] = receive.recv()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the seed failed (exit code {child.exitcode})")
    return seeded


def relay_config(relay: PostfixRelay | None, kind: str, sink_port: int) -> SmtpConfig:
    """Where the cycle sends: the sink itself, or the relay's listener for ``kind``."""
    if relay is None:
        return SmtpConfig(port=sink_port, timeout=30)
    listener, security, login = RELAYS[kind]
    return SmtpConfig(host="127.0.0.1", port=relay.ports[listener], security=security,
                      user=SASL_USER if login else None,
                      password=SASL_PASSWORD if login else None,
                      ca_file=relay.ca_file, timeout=30)


def run_cycle(workdir: Path, db: Database, accounts: int, senders: int,
              config: SmtpConfig) -> tuple[Stages, dict[str, Any]]:
    engine = create_engine(url := db.url)
    upgrade(engine)
    engine.dispose()  # no connection crosses the fork
    start, _ = period_bounds(PERIOD)
    stages = Stages(server=db.server.seconds if db.server else None)
    stages.start()
    seeded = seed_apart(url, accounts, date(start.year, start.month, 1), workdir)
    if db.server:  # analyzed, as autovacuum has done long before a cycle (cycle_db.py)
        analyze_all(url)
    org_id = int(seeded["org_id"])
    stages.done("seed (not in the cycle)", accounts=accounts)
    stages.rows[-1]["children_peak_mb"] = round(seeded["peak_rss_mb"])
    stages.start()
    usage = import_usage_file(engine, org_id, Path(seeded["usage_file"]))
    stages.done("meter", events=usage.get("inserted"))
    stages.start()
    billed = bill_period(engine, org_id, PERIOD, actor="bench")
    assert billed.run_id is not None
    stages.done("rate + invoice", drafted=billed.drafted)
    stages.start()
    finalized = finalize_run(engine, org_id, billed.run_id, issue_date=start)
    stages.done("finalize", invoices=len(finalized))
    stages.start()
    counts = RenderCounts()
    rendered = render_run(engine, org_id, billed.run_id, workdir / "files", counts=counts)
    shutdown_pool()  # reaps the workers: their CPU is counted in this stage
    stages.done("render", invoices=rendered, renderers=counts.by_renderer,
                fallback_reasons=counts.fallback_reasons[:3])
    stages.start()
    plan = plan_run(engine, org_id, billed.run_id, actor="bench")
    stages.done("plan", envelopes=plan.envelopes, verdict=plan.verdict)
    key = generate_key(workdir / "dkim.pem")
    signer = DkimSigner(DkimKey(SELECTOR, DOMAIN, key))
    stages.start()
    sent = send_run(engine, org_id, billed.run_id, transport=SmtpSender(config), signer=signer,
                    options=SendOptions(senders=senders),
                    transport_factory=lambda: SmtpSender(config))
    stages.done("guard + DKIM + send + ledger", status=sent.status, outbox=sent.counts)
    stages.start()
    with engine.begin() as conn:
        checked = ledger.verify(conn, org_id)
    stages.done("ledger verify", rows=checked.rows, ok=checked.ok)
    engine.dispose()
    return stages, {"url": url, "org_id": org_id, "run_id": billed.run_id, "key": key,
                    "invoices": len(finalized)}


# ---- the library pipeline: Typst -> factur-x -> EmailMessage -> dkimpy -> smtplib ----

_worker: dict[str, Any] = {}


def _library_init(config: SmtpConfig, key_path: str) -> None:
    context = ssl.create_default_context(cafile=config.ca_file)
    smtp: smtplib.SMTP
    if config.security == "ssl":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=30, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=30)
    assert smtp.sock is not None
    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if config.security == "starttls":
        smtp.starttls(context=context)
    if config.user and config.password:
        smtp.login(config.user, config.password)
    _worker["smtp"] = smtp
    _worker["key"] = Path(key_path).read_bytes()


def _library_one(invoice: Any) -> int:
    import dkim
    from facturx import generate_from_binary

    from sealbill.documents.cii import build_cii
    from sealbill.documents.pdf import compile_pdf

    xml = build_cii(invoice)
    pdf = generate_from_binary(compile_pdf(invoice), xml, flavor="factur-x", level="en16931",
                               check_xsd=False)
    message = EmailMessage()
    message["From"], message["To"] = "billing@acme-cloud.example", invoice.buyer.email or "x@y"
    message["Subject"] = f"Invoice {invoice.number}"
    message.set_content(f"Invoice {invoice.number} attached.")
    message.add_attachment(pdf, maintype="application", subtype="pdf",
                           filename=f"{invoice.number}.pdf")
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    signature = dkim.sign(data, SELECTOR.encode(), DOMAIN.encode(), _worker["key"],
                          include_headers=[b"from", b"to", b"subject"])
    _worker["smtp"].sendmail("billing@acme-cloud.example", [message["To"]], signature + data)
    return len(data)


def library_pipeline(facts: dict[str, Any], sample: int, config: SmtpConfig,
                     workdir: Path) -> float:
    """Seconds for ``sample`` invoices of the run through the library pipeline (2 processes)."""
    engine = create_engine(facts["url"])
    with engine.begin() as conn:
        ids = [int(i) for i in conn.execute(
            sa.text("SELECT id FROM invoices WHERE run_id = :run ORDER BY id LIMIT :n"),
            {"run": facts["run_id"], "n": sample}).scalars()]
        invoices = [load_invoice(conn, facts["org_id"], i) for i in ids]
    engine.dispose()
    key_path = workdir / "dkim.pem"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, _library_init, (config, str(key_path))) as pool:
        pool.map(_library_one, invoices[:4])  # start: imports, fonts, connections
        begin = time.perf_counter()
        sizes = pool.map(_library_one, invoices, chunksize=4)
        seconds = time.perf_counter() - begin
    assert all(sizes)
    return len(invoices) / seconds


def fresh_workdir(given: Path | None, prefix: str) -> Path:
    """``given`` emptied (or a new temporary folder)."""
    workdir = given or Path(tempfile.mkdtemp(prefix=prefix))
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--sample", type=int, default=200, help="library pipeline invoices")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"],
                        help="postgresql: a throwaway cluster on loopback (see above)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--sink", default="auto", choices=["auto", "aiosmtpd", "postfix"])
    parser.add_argument("--relay", default="none", choices=["none", *RELAYS],
                        help="send through a throwaway Postfix on loopback (see above)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    why = None if args.relay == "none" else postfix_available() or (
        sasl_available() if RELAYS[args.relay][2] else None)
    if why:
        raise SystemExit(f"bench_cycle --relay {args.relay}: {why}")
    workdir = fresh_workdir(args.workdir, "sealbill-cycle-")
    sink = Sink(_pick_sink(args.sink))
    CHILDREN.ignored.update(_descendants(os.getpid()))  # the SMTP sink
    CHILDREN.start()
    try:
        with ExitStack() as stack:
            relay = None if args.relay == "none" else stack.enter_context(
                throwaway_postfix(relay_port=sink.port))
            config = relay_config(relay, args.relay, sink.port)
            db = stack.enter_context(cycle_database(args.db, workdir))
            load_before = os.getloadavg()
            stages, facts = run_cycle(workdir, db, args.accounts, args.senders, config)
            library_rate = library_pipeline(facts, args.sample, config, workdir)
    finally:
        sink.stop()
    summary = summarize(args, db, stages.rows, facts, library_rate, load_before, sink.kind)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print_summary(summary)


if __name__ == "__main__":
    main()
