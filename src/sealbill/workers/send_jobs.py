"""The send stage split into jobs: the canary, the slices of the rest, the closing status.

The embedded :func:`sealbill.pipeline.delivery.send.send_run` does all three in one process under
the
run's lock; here each part is its own job, possibly on another machine, and uses the same
sender (:class:`sealbill.pipeline.delivery.send._Sender`): the guard before every message, the kill
switch and run status read in every claiming transaction (one per batch of ≤ 100 messages,
at most 1 s before each goes), outcomes and ledger rows written per batch (a killed worker
resends at most the batch it had in flight, per job). Slice k of n owns the outbox rows whose
id is k modulo n (as a forked sender does);
the queue never runs two jobs of one slice at once (Procrastinate ``lock``), and the per-run
unique (invoice, recipient) claim refuses a pair twice whatever happens.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sealbill.mail import config as mail_config
from sealbill.mail.dkim import DkimKey, DkimSigner
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.seal_checks import history_halt
from sealbill.pipeline.delivery.send import SendError, SendOptions, _Sender
from sealbill.pipeline.delivery.send_checks import check_canary, retryable_left
from sealbill.store.delivery import outbox_runs
from sealbill.store.delivery import plans as plan_store
from sealbill.store.delivery.send_lock import run_lock
from sealbill.store.parties import records as parties

SENDABLE = ("approved", "sending")


def _options() -> SendOptions:
    return SendOptions()


def signer(engine: Engine, org_id: int) -> DkimSigner | None:
    """DKIM as ``sealbill run send`` signs: the configured key; without one, unsigned only
    when ``SEALBILL_DKIM=off`` says so (else the job fails, saying why)."""
    with engine.begin() as conn:
        sender_email = str(parties.organization(conn, org_id)["sender_email"] or "")
    domain = sender_email.rpartition("@")[2]
    cfg = mail_config.dkim_config()
    if cfg is None:
        if mail_config.unsigned_allowed():
            return None
        raise mail_config.ConfigError(mail_config.signing_summary(domain))
    return DkimSigner(DkimKey(cfg.selector, cfg.domain or domain, cfg.key_path.read_bytes()))


def _sender(engine: Engine, org_id: int, run_id: int,
            part: tuple[int, int] | None) -> _Sender:
    transport = SmtpSender(mail_config.smtp_config())
    return _Sender(engine, org_id, run_id, transport, signer(engine, org_id), _options(),
                   None, part=part)


def canary(engine: Engine, org_id: int, run_id: int) -> str | None:
    """Mark the run sending, check the sealed history, send the canary slice and judge it.
    Returns why it stopped, or None when the rest may go."""
    with run_lock(engine, org_id, run_id):
        with engine.begin() as conn:
            status = str(plan_store.run_row(conn, org_id, run_id)["status"])
            if status not in SENDABLE:
                raise SendError(f"run {run_id} is {status}: nothing to send")
            plan_store.set_run_status(conn, org_id, run_id, "sending")
        if history_halt(engine, org_id, run_id) is not None:
            return "halted"
        sender = _sender(engine, org_id, run_id, None)
        try:
            stopped = sender.phase(canary=True)
        finally:
            sender.transport.close()
        if stopped is None:
            stopped = check_canary(engine, org_id, run_id, _options().canary_min_failures,
                                   _options().canary_failure_share)
        return stopped


def send_part(engine: Engine, org_id: int, run_id: int, part: int, parts: int) -> str | None:
    """Send slice ``part`` of ``parts`` (retrying its temporary failures); why it stopped."""
    with engine.begin() as conn:
        if str(plan_store.run_row(conn, org_id, run_id)["status"]) != "sending":
            return "not sending"
    sender = _sender(engine, org_id, run_id, (part, parts))
    try:
        return sender.phase(canary=False)
    finally:
        sender.transport.close()


def close(engine: Engine, org_id: int, run_id: int) -> str:
    """``sent``, or ``incomplete`` when messages were set aside or failed (as send_run)."""
    with engine.begin() as conn:
        status = str(plan_store.run_row(conn, org_id, run_id)["status"])
        if status != "sending" or retryable_left(conn, org_id, run_id,
                                                  _options().max_attempts):
            return status
        counts = outbox_runs.counts(conn, org_id, run_id)
        left = ("set_aside", "failed_permanent", "failed_temporary")
        status = "incomplete" if any(counts.get(s) for s in left) else "sent"
        plan_store.set_run_status(conn, org_id, run_id, status)
        return status
