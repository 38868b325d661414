"""The demo's delivery: a local SMTP sink, a plan, the guarded send, the ledger check."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealbill.demo.cycle import DemoReport
from sealbill.mail.config import SmtpConfig
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key
from sealbill.mail.sink import SinkHandler, bound_port, start_sink
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.pipeline.delivery.send import send_run
from sealbill.store.delivery import ledger


def deliver_to_sink(maildir: Path, say: Callable[[str], None], *,
                    relay: SmtpConfig | None = None
                    ) -> Callable[[Any, int, int, DemoReport], None]:
    """A ``deliver`` step for :func:`sealbill.demo.cycle.run_demo`: to a local sink writing
    ``maildir``, or to the operator's ``relay`` (the SMTP settings of the environment)."""

    def deliver(engine: Any, org_id: int, run_id: int, report: DemoReport) -> None:
        t = time.perf_counter()
        plan = plan_run(engine, org_id, run_id, actor="demo-operator")
        report.stage("plan", t, verdict=plan.verdict, envelopes=plan.envelopes)
        say(f"plan: {plan.envelopes} envelopes, verdict {plan.verdict}")
        if plan.verdict != "proceed":
            say("the diff gate held the run; see `sealbill run plan` for why")
            return
        controller = None if relay else start_sink(SinkHandler(maildir))
        try:
            key = generate_key(report.workdir / "dkim.pem")
            signer = DkimSigner(DkimKey("demo", "acme-cloud.example", key))
            t = time.perf_counter()
            config = relay or SmtpConfig(host="127.0.0.1", port=bound_port(
                controller))  # type: ignore[arg-type] # the sink runs when there is no relay
            sent = send_run(engine, org_id, run_id, signer=signer,
                            transport=SmtpSender(config))
        finally:
            if controller is not None:
                controller.stop()
        report.stage("guard+send+ledger", t, status=sent.status, outbox=sent.counts,
                     stopped=sent.stopped)
        where = f"relay {relay.host}:{relay.port}" if relay else str(maildir)
        say(f"send: run {sent.status}, outbox {sent.counts}; mails in {where}")
        t = time.perf_counter()
        with engine.begin() as conn:
            checked = ledger.verify(conn, org_id)
        report.stage("ledger verify", t, rows=checked.rows, problems=len(checked.problems))
        say(f"ledger: {checked.rows} rows, " + ("hash chain verified" if checked.ok
                                                 else f"PROBLEMS: {checked.problems}"))

    return deliver
