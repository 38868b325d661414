"""Run one function in several forked worker processes, with a shared progress counter.

Used by ``sealbill run send --senders N``: each sender is a whole sender (its own database
connections, its own SMTP connection, the guard before each of its messages), working on its
own slice of the outbox, so the CPU-bound work (composition, DKIM, the guard's reading of the
bytes) runs on every core.

Invariants:
- the caller disposes of its database pools *before* calling, so no child inherits a live
  connection (an inherited psycopg or SQLite connection used from two processes corrupts it);
- a child that dies (even by SIGKILL) is reported as :class:`WorkerDied`, never as success;
- results come back in worker order, whatever order the workers finish in.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from sealbill.processes import exit_with_parent

Progress = Callable[[int], None]


@dataclass(frozen=True)
class WorkerDied:
    worker: int
    exitcode: int | None
    error: str = ""


def run_forked(count: int, work: Callable[[int, Progress], Any],
               on_progress: Progress | None = None) -> list[Any]:
    """``[work(0, progress), ..., work(count - 1, progress)]``, each in its own forked
    process; a worker that raised or died yields a :class:`WorkerDied` in its place."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    pipes: list[Connection] = []
    processes = []
    for worker in range(count):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(work, worker, counter, send,
                                                        os.getpid()),
                                  name=f"sealbill-sender-{worker}")
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    results: list[Any] = [None] * count
    pending = dict(enumerate(pipes))
    reported = 0
    while pending:
        for ready in wait(list(pending.values()), timeout=0.2):
            worker = next(k for k, pipe in pending.items() if pipe is ready)
            try:
                outcome, value = pending[worker].recv()
            except EOFError:
                outcome, value = "died", ""
            results[worker] = value if outcome == "ok" else WorkerDied(worker, None, str(value))
            del pending[worker]
        reported = _report(counter, reported, on_progress)
    for worker, process in enumerate(processes):
        process.join()
        if isinstance(results[worker], WorkerDied):
            results[worker] = WorkerDied(worker, process.exitcode, results[worker].error)
    _report(counter, reported, on_progress)
    return results


def _report(counter: Any, reported: int, on_progress: Progress | None) -> int:
    value = int(counter.value)
    if on_progress is not None and value > reported:
        on_progress(value - reported)
    return value


def _child(work: Callable[[int, Progress], Any], worker: int, counter: Any,
           pipe: Connection, parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # a sender never outlives a killed `run send`
    def progress(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    try:
        pipe.send(("ok", work(worker, progress)))
    except BaseException as exc:  # reported to the parent, which decides
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()
