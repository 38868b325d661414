"""Where the send stage's processes wait: one send of a planned run, each sender's time split.

    PYTHONPATH=<tree>/src .venv/bin/python bench/bench_send_waits.py CACHE [--senders N]

``CACHE``: a directory ``bench/bench_delivery.py --cache CACHE --count N`` filled (the planned
run, its documents, the DKIM key). The run is copied, sent once to Postfix's ``smtp-sink`` (its
own process) with ``--senders`` forked senders after the canary, and for each phase of each
sender (the canary in the lead, then each forked sender) the wall time is split from the
kernel's scheduler statistics (``/proc/thread-self/schedstat``) into CPU, **runqueue** (ready
but not on a core: the neighbours' load) and **blocked** (what the process itself waited for:
the rest). Each of these is given per step of the sender: SMTP (``SmtpSender.send``: the
sink's replies), building and reading back the batch, judging it, ``BEGIN IMMEDIATE`` (SQLite's
write lock; its busy handler sleeps in steps), the senders' turn at that lock
(``fcntl.lockf``, when the tree has one), commits, other statements; the lead's start-up
(history check, identifier automaton, sender set-up) and the sink's CPU and runqueue time
(from ``/proc``) too. Measurement only: the hooks wrap the product's functions and change
nothing they do. On a loaded machine the blocked column is the one to compare: the runqueue
column follows the neighbours. Since the next batch is built in a thread while the current one
is sent (``send_ahead``): ``prepare`` times only the batches built in the sender's own thread
(the first of each page), the phase's CPU counts both threads, its runqueue only the sender's
thread, and the sender's waits for the interpreter's lock count as blocked.

``<tree>``: the worktree whose code is measured (this file may be run against an older tree:
it takes ``bench_delivery.py`` and ``sealbill`` from the first ``PYTHONPATH`` entry's parent).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FIRST = os.environ.get("PYTHONPATH", "").split(":")[0]
TREE = Path(_FIRST).resolve().parent if _FIRST else Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TREE), str(TREE / "src"), str(TREE / "bench")]

from bench_delivery import Sink  # noqa: E402
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as Dialect  # noqa: E402

from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.smtp import SmtpSender  # noqa: E402
from sealbill.pipeline.delivery import send as send_module  # noqa: E402
from sealbill.pipeline.delivery import send_judging  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()
STEPS = ("smtp", "prepare", "judge", "sql.begin_imm", "turn", "sql.commit", "sql.other")
LIMITS = (0.0005, 0.002, 0.01, 0.05, 0.2, float("inf"))  # wait histogram's bounds, seconds
steps: dict[str, float] = {}  # this process's current phase
lead: dict[str, float] = {}  # the lead's start-up


def sched() -> tuple[float, float]:
    """This thread's (CPU, runqueue) seconds so far."""
    with open("/proc/thread-self/schedstat", encoding="ascii") as f:
        run, wait, _ = f.read().split()
    return int(run) / 1e9, int(wait) / 1e9


def add(key: str, wall: float, cpu: float, queued: float) -> None:
    for part, value in (("n", 1.0), ("wall", wall), ("cpu", cpu), ("rq", queued)):
        steps[f"{key}.{part}"] = steps.get(f"{key}.{part}", 0.0) + value


def wait_histogram(key: str, seconds: float) -> None:
    bound = next(b for b in LIMITS if seconds < b)
    steps[f"{key}<{bound}"] = steps.get(f"{key}<{bound}", 0.0) + 1


def timed(key: str, fn: Callable[..., Any], histogram: bool = False) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, (cpu, queued) = time.perf_counter(), sched()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu1, queued1 = sched()
            add(key, time.perf_counter() - wall, cpu1 - cpu, queued1 - queued)
            if histogram:
                wait_histogram(key, time.perf_counter() - wall)
    return wrapper


def _statement_kind(statement: str) -> str:
    head = statement.lstrip()[:15].upper()
    return "sql.begin_imm" if head.startswith("BEGIN IMMEDIATE") else (
        "sql.begin_read" if head.startswith("BEGIN") else "sql.other")


def timed_sql(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, cursor: Any, statement: str, *rest: Any) -> Any:
        kind = _statement_kind(statement)
        return timed(kind, fn, histogram=kind == "sql.begin_imm")(self, cursor, statement,
                                                                  *rest)
    return wrapper


def timed_lead(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.monotonic(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            lead[key] = lead.get(key, 0.0) + time.monotonic() - wall
            lead[key + " cpu"] = lead.get(key + " cpu", 0.0) + time.process_time() - cpu
    return wrapper


def install(out: Path) -> None:
    """The hooks (inherited by the forked senders)."""
    lockf = fcntl.lockf
    taken = timed("turn", lockf, histogram=True)
    fcntl.lockf = lambda fd, op, *a: (  # type: ignore[assignment]
        taken(fd, op, *a) if op == fcntl.LOCK_EX else lockf(fd, op, *a))
    Dialect.do_execute = timed_sql(Dialect.do_execute)  # type: ignore[method-assign]
    Dialect.do_execute_no_params = timed_sql(  # type: ignore[method-assign]
        Dialect.do_execute_no_params)
    Dialect.do_commit = timed("sql.commit", Dialect.do_commit)  # type: ignore[method-assign]
    SmtpSender.send = timed("smtp", SmtpSender.send)  # type: ignore[method-assign]
    sender = send_module._Sender
    sender._prepare = timed("prepare", sender._prepare)  # type: ignore[method-assign]
    send_judging.Judge.judge = timed("judge", send_judging.Judge.judge)  # type: ignore[method-assign]
    checks = send_module.seal_checks
    checks.history_halt = timed_lead("history check", checks.history_halt)  # type: ignore[assignment]
    automaton = send_module.AutomatonSearch
    automaton.from_entries = classmethod(  # type: ignore[assignment]
        timed_lead("identifier automaton", automaton.from_entries.__func__))  # type: ignore[attr-defined]
    init, phase = sender.__init__, sender.phase
    lead_pid = os.getpid()

    def timed_init(self: Any, *args: Any, **kwargs: Any) -> None:
        wall, cpu = time.monotonic(), time.process_time()
        init(self, *args, **kwargs)
        if os.getpid() == lead_pid:
            lead["sender set-up"] = time.monotonic() - wall
            lead["sender set-up cpu"] = time.process_time() - cpu

    def timed_phase(self: Any, canary: bool | None) -> str | None:
        steps.clear()
        wall, cpu, queued = time.monotonic(), time.process_time(), sched()[1]
        try:
            return phase(self, canary)  # type: ignore[no-any-return]
        finally:
            steps.update(start=wall - T0, end=time.monotonic() - T0,
                         wall=time.monotonic() - wall, cpu=time.process_time() - cpu,
                         rq=sched()[1] - queued)
            name = "canary" if canary else f"sender {getattr(self, 'part', None)}"
            (out / f"{os.getpid()}.json").write_text(json.dumps({"name": name, **steps}))

    sender.__init__ = timed_init  # type: ignore[method-assign]
    sender.phase = timed_phase  # type: ignore[method-assign]


def proc_times(pid: int) -> tuple[float, float]:
    """A process's (CPU, runqueue) seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    queued = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    return (int(fields[11]) + int(fields[12])) / TICK, queued


def print_phase(s: dict[str, Any]) -> None:
    blocked = s["wall"] - s["cpu"] - s["rq"]
    print(f"| {s['name']} | {s['start']:.2f}–{s['end']:.2f} | {s['wall']:.2f} | {s['cpu']:.2f} "
          f"| {s['rq']:.2f} | **{blocked:.2f}** |")
    for key in STEPS:
        if f"{key}.n" not in s:
            continue
        wall, cpu, queued = (s[f"{key}.{p}"] for p in ("wall", "cpu", "rq"))
        waits = ", ".join(f"<{b * 1000:g} ms: {s[f'{key}<{b}']:.0f}" for b in LIMITS
                          if f"{key}<{b}" in s)
        print(f"| &nbsp; {key} ×{s[f'{key}.n']:.0f} | | {wall:.2f} | {cpu:.2f} | {queued:.2f} "
              f"| {wall - cpu - queued:.2f} {waits} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    meta = json.loads((args.cache / "scenario.json").read_text())
    os.environ.setdefault("SEALBILL_KEYRING_DIR", str(args.cache / "keyring"))
    out = Path(tempfile.mkdtemp(prefix="send-waits-"))
    install(out)
    db = out / "send.sqlite"
    shutil.copyfile(args.cache / "planned.sqlite", db)
    warm = sum(len(f.read_bytes()) for f in (args.cache / "files").rglob("*") if f.is_file())
    signer = DkimSigner(DkimKey("bench", "acme-cloud.example",
                                generate_key(args.cache / "dkim.pem")))
    sink = Sink("postfix")
    config = SmtpConfig(port=sink.port, timeout=30)
    engine = create_engine(f"sqlite:///{db}")
    load = Path("/proc/loadavg").read_text().split()[:3]
    sink0, mine0, started = proc_times(sink._proc.pid), os.times(), time.monotonic()
    report = send_module.send_run(
        engine, meta["org_id"], meta["run_id"], transport=SmtpSender(config), signer=signer,
        options=send_module.SendOptions(senders=args.senders),
        transport_factory=lambda: SmtpSender(config))
    wall, mine = time.monotonic() - started, os.times()
    sink1 = proc_times(sink._proc.pid)
    sink.stop()
    engine.dispose()
    own = mine.user - mine0.user + mine.system - mine0.system
    children = (mine.children_user - mine0.children_user + mine.children_system
                - mine0.children_system)
    sink_cpu, n = sink1[0] - sink0[0], meta["count"]
    print(f"{n} messages ({report.status}, {report.counts}, judged again as their fresh read "
          f"grew old: {report.judged_again}), {args.senders} senders; documents "
          f"read before: {warm / 1e6:.0f} MB; load before {' '.join(load)}, after "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"stage: wall {wall:.2f} s starting at {started - T0:.2f}; CPU lead {own:.2f} + "
          f"senders {children:.2f} = {own + children:.2f} s ({1000 * (own + children) / n:.2f} "
          f"ms a message) + sink {sink_cpu:.2f} (runqueue {sink1[1] - sink0[1]:.2f})")
    print("lead start-up: " + ", ".join(f"{k} {v:.2f} s" for k, v in lead.items()))
    print("\n| phase / step | from–to s | wall s | CPU s | runqueue s | blocked s |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for found in sorted((json.loads(f.read_text()) for f in out.glob("*.json")),
                        key=lambda s: s["start"]):
        print_phase(found)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
