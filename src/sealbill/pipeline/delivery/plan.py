"""Plan a run's delivery, compare it with the previous cycle, hold it or let it proceed.

After rendering: one envelope per finalized document of the run — an invoice, or a credit
note (the run's own, or a manual one the run took, ``store/billing/credit_delivery.py``) — its
account (a credit note's is its corrected invoice's), the recipients resolved *now* from
:func:`~sealbill.store.parties.records.verified_billing_recipients`, and the digests of the rendered
documents from the ``documents`` rows. The plan is evaluated against the
previous cycle's plan by :func:`sealbill.domain.delivery_plan.evaluate`; a ``hold`` verdict puts
the run in ``held`` until someone other than the person who started it approves.

Invariants:
- a run is planned only when every finalized invoice of it is rendered (pdf, xml, html, text);
- envelopes without a verified recipient get an outbox row in ``held`` (nothing to send to),
  all others ``queued``; the run itself is ``held`` or ``approved`` per the verdict;
- the canary slice is chosen at plan time and stored on the envelopes: the run's internal test
  accounts when it has any, else ``max(1, ceil(share x envelopes))`` envelopes picked by a hash
  of (run, invoice) so the slice is spread over the run and the same on a replan;
- approval is recorded (who, why, when) on the plan and refused from the run's starter.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.domain.delivery_plan import (
    HOLD,
    PROCEED,
    DeliveryPolicy,
)
from sealbill.domain.send_policy import envelope_digest
from sealbill.mail.mime import message_id_for
from sealbill.pipeline.delivery import plan_chunks
from sealbill.pipeline.delivery.plan_judge import FINISHED, judge
from sealbill.store.delivery import alerts, plan_reads, plan_writes
from sealbill.store.delivery import plans as store
from sealbill.store.parties import records as parties
from sealbill.store.parties.records import Recipient

PLANNABLE = ("finalized", "rendered", "planned", "held", "approved")
REPLANNABLE = (*PLANNABLE, "sending")  # a halted run is resumed (recorded) first
RECIPIENT_CHUNK = 1000  # accounts per read of their verified billing contacts
PROGRESS_EVERY = 500  # envelopes between two progress reports
CHUNK = plan_chunks.CHUNK  # invoices built and stored together (approvals: envelopes)
DOCUMENT_KINDS = frozenset(("pdf", "xml", "html", "text"))


class PlanError(RuntimeError):
    """The run cannot be planned or approved as asked."""


@dataclass(frozen=True)
class PlanResult:
    run_id: int
    plan_id: int
    verdict: str
    report: Mapping[str, Any]
    envelopes: int
    replanned: int


def resolve_recipients(conn: Connection, org_id: int, account_ids: Sequence[int]
                       ) -> dict[int, list[Recipient]]:
    """Each account's recipients for the plan, read for a chunk of accounts at once (a seam
    the fault-injection tests replace)."""
    found: dict[int, list[Recipient]] = {}
    for start in range(0, len(account_ids), RECIPIENT_CHUNK):
        for account_id, recipient in parties.verified_billing_recipients_many(
                conn, org_id, account_ids[start:start + RECIPIENT_CHUNK]):
            found.setdefault(account_id, []).append(recipient)
    return found


def body_digest(text_sha256: str, html_sha256: str) -> str:
    """One digest for the two mail bodies, as recorded on the envelope and in the ledger."""
    return hashlib.sha256(f"text:{text_sha256}\nhtml:{html_sha256}\n".encode()).hexdigest()


class CanaryPick:
    """The canary slice chosen as the envelopes are built, a chunk at a time: the run's
    internal test invoices that can be sent, if any; else the ``max(1, ceil(share x n))`` of
    the ``n`` sendable ones whose hash of (run, invoice) is lowest. Holds at most
    ``ceil(share x bound)`` hashes (``bound``: how many envelopes will be built)."""

    def __init__(self, run_id: int, share: float, bound: int) -> None:
        self.run_id, self.share = run_id, share
        self.keep = max(1, math.ceil(share * bound))
        self.sendable = 0
        self.internal: set[int] = set()
        self._lowest: list[tuple[str, int]] = []  # max-heap of (hash, invoice) by negation

    def add(self, invoice_id: int, *, sendable: bool, internal: bool) -> None:
        if not sendable:
            return
        self.sendable += 1
        if internal:
            self.internal.add(invoice_id)
        rank = hashlib.sha256(f"{self.run_id}:{invoice_id}".encode()).hexdigest()
        self._lowest.append((rank, invoice_id))
        if len(self._lowest) > 2 * self.keep:
            self._lowest = sorted(self._lowest)[:self.keep]

    def chosen(self) -> set[int]:
        if self.internal:
            return set(self.internal)
        if not self.sendable:
            return set()
        size = max(1, math.ceil(self.share * self.sendable))
        return {invoice_id for _, invoice_id in sorted(self._lowest)[:size]}


@dataclass
class _Build:
    """What building the envelopes leaves: how many, the canary, the unrendered invoices."""

    pick: CanaryPick
    was_canary: set[int]
    planned: int = 0
    canary_rebuilt: set[int] = field(default_factory=set)
    canary_reachable: bool = False  # a rebuilt canary envelope has a recipient
    unrendered: int = 0
    first_unrendered: str | None = None

    def canary(self, canary_left: bool, replan: bool) -> set[int]:
        """A replan keeps the canary slice: the rebuilt envelopes of canary invoices stay
        canary. If no canary message has left yet and none of those can be sent any more
        (no verified recipient now), the slice is chosen again among the rebuilt envelopes,
        so that the run still starts with a canary."""
        if not replan or (not canary_left and not self.canary_reachable):
            return self.pick.chosen()
        return self.canary_rebuilt


def plan_run(engine: Engine, org_id: int, run_id: int, *, actor: str,
             policy: DeliveryPolicy | None = None, canary_share: float = 0.01,
             replan: bool = False, now: datetime | None = None,
             on_progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None) -> PlanResult:
    """Build (or, with ``replan``, rebuild the unsent part of) the run's delivery plan,
    :data:`CHUNK` invoices at a time, then judge it (``plan_judge.py``).

    ``on_total`` is told how many envelopes will be built, ``on_progress`` each one built."""
    policy = policy or DeliveryPolicy()
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        store.lock_run(conn, org_id, run_id)  # against a credit note joining the run meanwhile
        run = store.run_row(conn, org_id, run_id)
        existing = store.plan_row(conn, org_id, run_id)
        if existing is not None and not replan:
            return _result(conn, org_id, run_id, existing, replanned=0)
        allowed = REPLANNABLE if replan else PLANNABLE
        if run["status"] == "halted":
            raise PlanError(f"run {run_id} is halted: investigate, then `sealbill resume --run "
                            f"{run_id} --reason ...` (recorded) before planning it again")
        if run["status"] not in allowed:
            raise PlanError(f"run {run_id} is {run['status']}: it cannot be planned now")
        if not store.run_invoices(conn, org_id, run_id, limit=1):
            raise PlanError(f"run {run_id} has no finalized invoice to deliver")
        previous_id = store.previous_plan_id(conn, org_id, str(run["period"]))
        todo: array[int] | None = None  # None: every invoice of the run
        was_canary: set[int] = set()
        if existing is None:
            plan_id = store.create_plan(conn, org_id, run_id, previous_id, actor)
        else:
            plan_id = int(existing["id"])
            was_canary = plan_reads.canary_invoice_ids(conn, org_id, plan_id)
            todo = store.drop_unsent(conn, org_id, plan_id)
        org = parties.organization(conn, org_id)
        domain = str(org["sender_email"]).rsplit("@", 1)[1].lower()
        # the archive copy is a recipient of every message: planned, shown, compared
        archive = str(org["archive_email"]).strip().lower() if org["archive_email"] else None
        store.set_archive(conn, org_id, plan_id, archive)
        total = plan_reads.count_run_invoices(conn, org_id, run_id, todo)
        if on_total:
            on_total(total)
        built = _Build(CanaryPick(run_id, canary_share, total), was_canary)
        for chunk in plan_chunks.chunks(conn, org_id, run_id, todo, resolve_recipients):
            _build_chunk(conn, org_id, run_id, plan_id, chunk, todo, built, domain, now,
                         on_progress)
        if built.unrendered:
            raise PlanError(f"{built.unrendered} documents are not rendered yet "
                            f"(first: {built.first_unrendered}); run the render stage first "
                            "(`sealbill documents render RUN`)")
        canary_left = existing is not None and bool(
            plan_reads.canary_invoice_ids(conn, org_id, plan_id))  # kept, already sent
        plan_reads.mark_canary(conn, org_id, plan_id,
                               sorted(built.canary(canary_left, existing is not None)))
        if on_progress and built.planned % PROGRESS_EVERY:
            on_progress(built.planned % PROGRESS_EVERY)
        verdict, report = judge(conn, org_id, plan_id, previous_id, policy, now, archive)
        if existing is not None:  # who rebuilt it, kept with the verdict it led to
            report = {**report, "replanned_by": actor, "replanned_at": now.isoformat(),
                      "replanned_envelopes": built.planned}
        store.set_verdict(conn, org_id, plan_id, verdict, report)
        store.set_run_status(conn, org_id, run_id, "held" if verdict == HOLD else "approved")
        if verdict == HOLD:
            alerts.record(conn, org_id, cause="plan_hold", run_id=run_id,
                          message="; ".join(report["lines"][1:])[:2000]
                          or "delivery plan held", evidence=report)
        plan = store.plan_row(conn, org_id, run_id)
        assert plan is not None
        return _result(conn, org_id, run_id, plan,
                       replanned=built.planned if existing else 0)


def _build_chunk(conn: Connection, org_id: int, run_id: int, plan_id: int,
                 chunk: plan_chunks.ChunkFacts, todo: array[int] | None,
                 built: _Build, domain: str, now: datetime,
                 on_progress: Callable[[int], None] | None) -> None:
    """Check that the chunk's invoices are rendered; build, store and count the envelopes of
    those to plan (once an invoice is found unrendered, nothing more is stored: the plan
    fails at the end, listing how many)."""
    invoices, digests, by_account = chunk.invoices, chunk.digests, chunk.recipients
    for inv in invoices:
        if not digests.get(inv["id"], {}).keys() >= DOCUMENT_KINDS:
            built.unrendered += 1
            built.first_unrendered = built.first_unrendered or str(inv["number"])
    planned = [inv for inv in invoices
               if todo is None or plan_chunks.contains(todo, int(inv["id"]))]
    if built.unrendered or not planned:
        return
    rows: list[dict[str, Any]] = []
    for inv in planned:
        recipients = by_account.get(int(inv["account_id"]), [])
        docs = digests[int(inv["id"])]
        invoice_id = int(inv["id"])
        rows.append({
            "organization_id": org_id, "plan_id": plan_id, "run_id": run_id,
            "invoice_id": invoice_id, "account_id": int(inv["account_id"]),
            "recipients": [{"contact_id": r.contact_id, "email": r.email}
                           for r in recipients],
            "attachment_sha256": docs["pdf"],
            "body_sha256": body_digest(docs["text"], docs["html"]),
            "amount_minor": int(inv["total_incl_minor"]), "currency": str(inv["currency"]),
            "is_canary": False, "created_at": now,
        })
        built.pick.add(invoice_id, sendable=bool(recipients),
                       internal=bool(inv["is_internal_test"]))
        if invoice_id in built.was_canary:
            built.canary_rebuilt.add(invoice_id)
            built.canary_reachable = built.canary_reachable or bool(recipients)
        built.planned += 1
        if on_progress and built.planned % PROGRESS_EVERY == 0:
            on_progress(PROGRESS_EVERY)
    envelope_ids = plan_writes.insert_envelopes(conn, rows)
    plan_writes.insert_outbox(conn, [
        {"organization_id": org_id, "run_id": run_id, "envelope_id": env_id,
         "message_id": message_id_for(row["invoice_id"], env_id, domain),
         "status": "queued" if row["recipients"] else "held",
         "last_error": None if row["recipients"] else "no verified billing contact",
         "attempts": 0, "updated_at": now}
        for env_id, row in zip(envelope_ids, rows, strict=True)])


def _result(conn: Connection, org_id: int, run_id: int, plan: Mapping[str, Any], *,
            replanned: int) -> PlanResult:
    count = plan_reads.count_envelopes(conn, org_id, int(plan["id"]))
    return PlanResult(run_id, int(plan["id"]), str(plan["verdict"]), plan["report"], count,
                      replanned)


def approve_run(engine: Engine, org_id: int, run_id: int, *, actor: str, reason: str) -> None:
    """Let a held run proceed: by someone other than its starter, with a recorded reason."""
    if not actor.strip() or not reason.strip():
        raise PlanError("an approval needs --by and a --reason")
    with engine.begin() as conn:
        run = store.run_row(conn, org_id, run_id)
        plan = store.plan_row(conn, org_id, run_id)
        if plan is None:
            raise PlanError(f"run {run_id} has no delivery plan: run `sealbill run plan` first")
        if run["status"] != "held":
            raise PlanError(f"run {run_id} is {run['status']}, not held: nothing to approve")
        if actor.strip().casefold() == str(run["started_by"]).strip().casefold():
            raise PlanError(f"{actor} started run {run_id} and cannot approve it: "
                            "another person must review the plan")
        plan_id = int(plan["id"])
        archive = plan["archive_email"] or None
        # exactly what the approver was shown: the listed differences, and per envelope the
        # recipients and archive copy (a message that differs at send time is set aside)
        store.approve(conn, org_id, plan_id, actor, reason, differences_digest(plan["report"]))
        for rows in plan_reads.envelope_chunks(conn, org_id, plan_id, CHUNK):
            store.approve_envelopes(conn, org_id, plan_id, {
                int(row["id"]): envelope_digest(int(row["account_id"]), store.to_planned(
                    row).recipients, archive)
                for row in rows if row["outbox_status"] not in FINISHED})
        store.set_run_status(conn, org_id, run_id, "approved")
        alerts.resolve(conn, org_id, run_id, actor=actor)


def differences_digest(report: Mapping[str, Any]) -> str:
    """SHA-256 of the findings a held report listed (kind, count, items), canonical JSON."""
    listed = [{"kind": f["kind"], "count": f["count"], "items": f["items"]}
              for f in report.get("findings", [])]
    canonical = json.dumps({"archive": report.get("archive"), "findings": listed},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_summary(engine: Engine, org_id: int, run_id: int) -> dict[str, Any]:
    """The stored plan, its verdict, report and envelopes, for ``sealbill run plan``."""
    with engine.begin() as conn:
        plan = store.plan_row(conn, org_id, run_id)
        if plan is None:
            raise PlanError(f"run {run_id} has no delivery plan")
        envelopes = [
            {"envelope_id": row["id"], "invoice": row["number"], "kind": row["kind"],
             "account": row["reference"],
             "recipients": [r["email"] for r in row["recipients"]],
             # what SMTP will be told: the recipients, plus the archive copy
             "smtp_recipients": [r["email"] for r in row["recipients"]]
             + ([plan["archive_email"]] if plan["archive_email"] and row["recipients"]
                else []),
             "amount_minor": row["amount_minor"], "currency": row["currency"],
             "canary": bool(row["is_canary"]), "attachment_sha256": row["attachment_sha256"],
             "status": row["outbox_status"], "message_id": row["message_id"]}
            for row in store.envelope_rows(conn, org_id, int(plan["id"]))]
    return {"run_id": run_id, "plan_id": plan["id"], "verdict": plan["verdict"],
            "archive": plan["archive_email"], "approved_digest": plan["approved_digest"],
            "approved_by": plan["approved_by"], "approved_reason": plan["approved_reason"],
            "report": plan["report"], "envelopes": envelopes,
            "proceed": plan["verdict"] == PROCEED or plan["approved_by"] is not None}
