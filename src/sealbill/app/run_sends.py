"""Sending a run: the one use case behind ``sealbill run send`` (in the caller's process, with a
progress bar) and ``POST /v1/runs/{id}/send`` (accepted at once, sent in the background).

Invariants:
- both doors check the same things before anything is sent: the actor may act on runs, the
  SMTP settings are complete, mail is DKIM-signed unless ``SEALBILL_DKIM=off`` says
  otherwise (never silently unsigned), the run has a plan and is in a sendable state;
- :func:`accept` moves the run to ``sending`` and writes its ``run.send`` audit entry
  (``accepted``) in one transaction; the send's outcome (``sent``, ``incomplete``,
  ``halted``) is written with its own audit entry in the transaction that records it
  (:func:`sealbill.app.run_events.audited`), and its webhooks (``run.halted``,
  ``invoice.delivered``, ``guard.violation``) in the transactions of their facts;
- a send is resumable: a process that dies mid-send leaves the run ``sending`` and its
  outbox as it was; the next send (either door) continues from the outbox, under the run's
  sender lock (one sender per run, whatever the process).

Why a thread pool owned by the server (:class:`BackgroundSends`) rather than the Procrastinate
queue: the API serves SQLite as well as PostgreSQL (the queue needs PostgreSQL and a separate
worker process), a send is I/O bound (SMTP round trips, one connection per run), its state
lives in the database (run status, outbox, ledger) and it resumes after a crash, so nothing
is lost by running it beside the request handlers; the pool is shut down with the server,
which waits for the sends under way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import audit, ids, run_events
from sealbill.app.context import RUNS_WRITE, Actor
from sealbill.app.errors import Conflict, Invalid, Problem, StateError
from sealbill.app.invoices import run_row_id
from sealbill.mail import config as mail_config
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.send import SENDABLE_RUN, SendError, SendOptions, send_run
from sealbill.store.delivery import plans as plan_store
from sealbill.store.delivery.send_lock import RunBusy
from sealbill.store.parties import records as parties

log = logging.getLogger(__name__)


def dkim_signer(engine: Engine, org_id: int) -> Any:
    """The DKIM signer; ``None`` only when ``SEALBILL_DKIM=off`` asks for unsigned mail."""
    from sealbill.mail.dkim import DkimKey, DkimSigner

    cfg = mail_config.dkim_config()
    if cfg is None:
        if mail_config.unsigned_allowed():
            return None
        with engine.begin() as conn:
            domain = str(parties.organization(conn, org_id)["sender_email"]).rsplit("@", 1)[1]
        raise mail_config.ConfigError(mail_config.signing_summary(domain).removeprefix(
            "DKIM: REFUSED — "))
    with engine.begin() as conn:
        domain = str(parties.organization(conn, org_id)["sender_email"]).rsplit("@", 1)[1]
    return DkimSigner(DkimKey(cfg.selector, cfg.domain or domain, cfg.key_path.read_bytes()))


def signing(engine: Engine, org_id: int) -> str:
    """One line saying how the organization's mail will be signed, or that it is refused."""
    with engine.begin() as conn:
        domain = str(parties.organization(conn, org_id)["sender_email"]).rsplit("@", 1)[1]
    return mail_config.signing_summary(domain)


def _settings(engine: Engine, org_id: int) -> tuple[Any, Any]:
    """(SMTP settings, DKIM signer), or :class:`Invalid` naming what is missing."""
    try:
        return mail_config.smtp_config(), dkim_signer(engine, org_id)
    except mail_config.ConfigError as exc:
        raise Invalid(str(exc), [Problem("smtp", str(exc))]) from None


def _resolve(engine: Engine, actor: Actor, org_id: int, ref: str) -> tuple[int, str]:
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, ref)
        return run_id, ids.encode(conn, org_id, "run", run_id)


def to_send(engine: Engine, actor: Actor, org_id: int, ref: str) -> int:
    """How many messages of the run are still to send (a progress bar's total)."""
    run_id, _ = _resolve(engine, actor, org_id, ref)
    counts = control.status(engine, org_id, run_id)["outbox"]
    return sum(int(counts.get(s, 0)) for s in ("queued", "sending", "failed_temporary"))


def send(engine: Engine, actor: Actor, org_id: int, ref: str, *,
         options: SendOptions | None = None,
         on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Send the run now, in this process: canary first, the guard before every message, the
    ledger after (``options.senders`` > 1 forks sender processes: the CLI only)."""
    run_id, _ = _resolve(engine, actor, org_id, ref)
    smtp, signer = _settings(engine, org_id)
    return _send(engine, actor, org_id, run_id, smtp, signer, options or SendOptions(),
                 on_progress)


def _send(engine: Engine, actor: Actor, org_id: int, run_id: int, smtp: Any, signer: Any,
          options: SendOptions, on_progress: Callable[[int], None] | None = None
          ) -> dict[str, Any]:
    from sealbill.mail.smtp import SmtpSender

    after: dict[str, Any] = {}
    with run_events.audited(engine, actor, org_id, run_id, "run.send",
                            ("sent", "incomplete", "halted"), after):
        try:
            report = send_run(engine, org_id, run_id, transport=SmtpSender(smtp),
                              signer=signer, options=options, on_progress=on_progress,
                              transport_factory=lambda: SmtpSender(smtp))
        except (SendError, RunBusy) as exc:
            raise StateError(str(exc)) from None
        after.update({"status": report.status, "stopped": report.stopped,
                      "outbox": report.counts, "violations": report.violations})
    return {**after, "run_id": ids_of(engine, org_id, run_id), "seconds": report.seconds,
            "senders": report.senders}


def ids_of(engine: Engine, org_id: int, run_id: int) -> str:
    with engine.begin() as conn:
        return ids.encode(conn, org_id, "run", run_id)


def accept(engine: Engine, actor: Actor, org_id: int, ref: str) -> tuple[int, str, Any, Any]:
    """Check everything a send needs, then mark the run ``sending`` with its audit entry, in
    one transaction: (run id, public id, SMTP settings, signer). Refused: nothing written."""
    run_id, public = _resolve(engine, actor, org_id, ref)
    smtp, signer = _settings(engine, org_id)
    with engine.begin() as conn:
        run = plan_store.run_row(conn, org_id, run_id)
        if plan_store.plan_row(conn, org_id, run_id) is None:
            raise StateError(f"run {public} has no delivery plan: plan it first")
        status = str(run["status"])
        if status not in SENDABLE_RUN:
            raise StateError(f"run {public} is {status}: " + {
                "held": "approve the plan first",
                "halted": "the guard halted it: investigate, then resume it"}.get(
                    status, "nothing to send"))
        plan_store.set_run_status(conn, org_id, run_id, "sending")
        audit.record(conn, actor, org_id, "run.send", "run", public,
                     before={"status": status}, after={"status": "sending",
                                                       "accepted": True})
    return run_id, public, smtp, signer


class BackgroundSends:
    """The server's senders: at most ``workers`` runs sent at once, one send per run of this
    process at a time; :meth:`shutdown` waits for the sends under way."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="run-send")
        self._running: dict[tuple[int, int], Future[None]] = {}
        self._lock = threading.Lock()

    def start(self, engine: Engine, actor: Actor, org_id: int, ref: str,
              options: SendOptions | None = None) -> dict[str, Any]:
        """Accept the send (see :func:`accept`) and run it in the background; returns the
        run as accepted (``sending``). A run this server is sending already:
        :class:`Conflict`."""
        from sealbill.app.runs import show
        with self._lock:
            run_id, _ = _resolve(engine, actor, org_id, ref)
            running = self._running.get((org_id, run_id))
            if running is not None and not running.done():
                raise Conflict("this run is being sent already: follow it with GET "
                               "/v1/runs/{id}", [Problem("run", "a send is under way")])
            run_id, public, smtp, signer = accept(engine, actor, org_id, ref)
            accepted = show(engine, actor, org_id, public)
            self._running[(org_id, run_id)] = self._pool.submit(
                self._work, engine, actor, org_id, run_id, smtp, signer,
                options or SendOptions())
        return accepted

    def _work(self, engine: Engine, actor: Actor, org_id: int, run_id: int, smtp: Any,
              signer: Any, options: SendOptions) -> None:
        try:
            _send(engine, actor, org_id, run_id, smtp, signer, options)
        except StateError as exc:  # another sender holds the run: it finishes the send
            log.warning("run %s not sent here: %s", run_id, exc.message)
        except Exception as exc:  # the run stays `sending`: the next send resumes it
            log.exception("sending run %s failed; POST /send again resumes it", run_id)
            try:  # said where the client looks: the run's audit entries
                with engine.begin() as conn:
                    audit.record(conn, actor, org_id, "run.send", "run",
                                 ids.encode(conn, org_id, "run", run_id),
                                 after={"status": "sending", "error": str(exc)[:500],
                                        "next": "send the run again to resume it"})
            except Exception:
                log.exception("could not record the failed send of run %s", run_id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the sends started so far (tests, shutdown)."""
        with self._lock:
            futures = list(self._running.values())
        for future in futures:
            future.result(timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


__all__ = ["BackgroundSends", "accept", "send", "signing", "to_send"]
