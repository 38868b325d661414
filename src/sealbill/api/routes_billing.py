"""``/v1/usage``, ``/v1/runs``, ``/v1/invoices``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response

from sealbill.api import schemas
from sealbill.api.bodies import (
    ApproveIn,
    CreditNoteIn,
    PlanRunIn,
    QueueRunIn,
    RetryIn,
    RunIn,
    SetAsideIn,
    VoidInvoiceIn,
)
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.api.routes_setup import _public
from sealbill.app import distributed, ingest, invoices, message_actions, runs, usage
from sealbill.inputs.usage import UsageEventIn, VoidIn

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("/usage", response_model=schemas.UsageEvent, status_code=201, tags=["usage"])
def record_usage(body: UsageEventIn, actor: ActorDep, engine: EngineDep,
                 response: Response) -> Any:
    """Record one event; the same ``event_id`` and payload again is a no-op (200)."""
    _public(body.account, "acc_")
    result = usage.record(engine, actor, org(actor), body)
    if result["duplicate"]:
        response.status_code = 200
    return result


_BATCH_ITEM = {
    "type": "object", "additionalProperties": False,
    "required": ["event_id", "account_reference", "metric_code", "timestamp"],
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "account_reference": {"type": "string"}, "metric_code": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "value": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}}},
}


@router.post("/usage/batch", response_model=schemas.IngestResult, tags=["usage"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "array", "minItems": 1,
                                                 "maxItems": ingest.MAX_EVENTS,
                                                 "items": _BATCH_ITEM}}}}})
async def ingest_usage(request: Request, actor: ActorDep, engine: EngineDep) -> Any:
    """Up to 10,000 events, each idempotent by ``event_id``; all or nothing."""
    body = await request.body()
    return await anyio.to_thread.run_sync(ingest.ingest, engine, actor, org(actor), body)


@router.get("/usage", response_model=schemas.Page[schemas.UsageEvent], tags=["usage"])
def list_usage(actor: ActorDep, engine: EngineDep, account_id: str | None = None,
               metric: str | None = None, since: datetime | None = None,
               until: datetime | None = None, include_voided: bool = True,
               limit: Limit = 100, cursor: str | None = None) -> Any:
    return usage.list_events(engine, actor, org(actor),
                             account=_public(account_id, "acc_") if account_id else None,
                             metric=metric, since=since, until=until,
                             include_voided=include_voided, limit=limit,
                             cursor=_public(cursor, "use_") if cursor else None)


@router.post("/usage/{usage_id}/void", response_model=schemas.UsageEvent, tags=["usage"])
def void_usage(usage_id: str, body: VoidIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Void one event with a reason: kept, excluded from rating."""
    return usage.void(engine, actor, org(actor), _public(usage_id, "use_"), body)


def _run(value: str) -> str:
    return _public(value, "run_")


@router.get("/runs", response_model=schemas.Page[schemas.Run], tags=["runs"])
def list_runs(actor: ActorDep, engine: EngineDep, limit: Limit = 100,
              cursor: str | None = None) -> Any:
    """The runs by period, a page at a time (``next_cursor``: the last period shown)."""
    return runs.page_runs(engine, actor, org(actor), limit=limit, cursor=cursor)


@router.post("/runs", response_model=schemas.Run | dict[str, Any], status_code=201,
             tags=["runs"])
def start_run(body: RunIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Bill a period: one draft invoice per account (``dry_run`` writes nothing)."""
    result = runs.start(engine, actor, org(actor), body.period, dry_run=body.dry_run)
    if result.get("run_id"):
        return {**runs.show(engine, actor, org(actor), result["run_id"]), "billing": result}
    return result


def _progress(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "progress_url": f"/v1/runs/{data['run_id']}/progress"}


@router.post("/runs/enqueue", response_model=schemas.RunProgress, status_code=202,
             tags=["runs"])
def enqueue_run(body: QueueRunIn, actor: ActorDep, engine: EngineDep,
                response: Response) -> Any:
    """Start a period's run on the workers' queue (``sealbill worker``, PostgreSQL), or
    resume it: rating chunks, finalization, render chunks, plan, canary, send chunks and
    the ledger check follow as jobs. 202 with the run's progress; follow ``progress_url``
    (also in ``Location``). On SQLite: 409, the distributed cycle needs PostgreSQL."""
    data = _progress(distributed.start(engine, actor, org(actor), body.period))
    response.headers["Location"] = data["progress_url"]
    return data


@router.get("/runs/{run_id}/progress", response_model=schemas.RunProgress, tags=["runs"])
def run_progress(run_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """How far a run on the queue is: chunks rated, invoices, rendered, outbox, jobs."""
    return _progress(distributed.progress(engine, actor, org(actor), _run(run_id)))


@router.get("/runs/{run_id}", response_model=schemas.Run, tags=["runs"])
def get_run(run_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    return runs.show(engine, actor, org(actor), _run(run_id))


@router.post("/runs/{run_id}/finalize", response_model=schemas.Run, tags=["runs"])
def finalize_run(run_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """Number the drafts (gapless) and make them immutable."""
    return runs.finalize(engine, actor, org(actor), _run(run_id))


@router.post("/runs/{run_id}/render", response_model=schemas.Run, tags=["runs"])
def render_run(run_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """Render the PDF/A-3 Factur-X documents and mail bodies."""
    return runs.render(engine, actor, org(actor), _run(run_id))


@router.post("/runs/{run_id}/plan", response_model=schemas.Run, tags=["runs"])
def plan_run(run_id: str, body: PlanRunIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Build the delivery plan and judge it against the previous cycle (may hold it)."""
    return runs.plan(engine, actor, org(actor), _run(run_id), replan=body.replan,
                     policy=body.policy)


@router.post("/runs/{run_id}/approve", response_model=schemas.Run, tags=["runs"])
def approve_run(run_id: str, body: ApproveIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Approve a held run: an operator other than the one who started it (a run on the
    queue then has the rest of its jobs enqueued)."""
    return distributed.approve(engine, actor, org(actor), _run(run_id), body.reason)


@router.post("/runs/{run_id}/send", response_model=schemas.Run, status_code=202,
             tags=["runs"])
def send_run(run_id: str, actor: ActorDep, engine: EngineDep, request: Request,
             response: Response) -> Any:
    """Start sending (canary first, the guard before every message, the ledger after) and
    answer at once: 202 with the run, ``sending``. The send runs in the server's background
    senders; follow it at ``Location`` (``GET /v1/runs/{id}``: ``sent``, ``incomplete``,
    ``halted`` or ``paused``, with the outbox) or by the ``invoice.delivered`` and
    ``run.halted`` webhooks. A run this server is sending already: 409."""
    data = request.app.state.sends.start(engine, actor, org(actor), _run(run_id))
    response.headers["Location"] = f"/v1/runs/{data['run_id']}"
    return {**data, "status_url": f"/v1/runs/{data['run_id']}"}


@router.post("/runs/{run_id}/set-aside", response_model=schemas.SetAside, tags=["runs"])
def set_aside_message(run_id: str, body: SetAsideIn, actor: ActorDep,
                      engine: EngineDep) -> Any:
    """Exclude one message from the run (or confirm the guard's set-aside of it), with a
    reason; once the guard's set-asides of a halted run are confirmed, the next send sends
    the rest. Approvers and administrators; the same use case as ``sealbill run
    set-aside``."""
    return message_actions.set_aside(engine, actor, org(actor), _run(run_id), body.invoice,
                                     body.reason)


@router.post("/runs/{run_id}/retry", response_model=schemas.Retried, tags=["runs"])
def retry_run(run_id: str, body: RetryIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Queue a message again (``invoice``), or every failed message of the run (no
    ``invoice``): the next send checks each with the whole guard and sends it only to its
    recipients not yet delivered; a sent message whose bounced contact was corrected since
    goes to that corrected address only. Approvers and administrators; the same use case as
    ``sealbill run retry``."""
    if body.invoice is None:
        return message_actions.retry_failed(engine, actor, org(actor), _run(run_id),
                                            body.reason)
    return message_actions.retry(engine, actor, org(actor), _run(run_id), body.invoice,
                                 body.reason)


@router.get("/invoices", response_model=schemas.Page[schemas.InvoiceSummary],
            tags=["invoices"])
def list_invoices(actor: ActorDep, engine: EngineDep, run_id: str | None = None,
                  status: Literal["draft", "finalized", "void"] | None = None,
                  kind: Literal["invoice", "credit_note"] | None = None,
                  account_reference: str | None = None, limit: Limit = 100,
                  cursor: str | None = None) -> Any:
    """Invoices and credit notes, a page at a time (``next_cursor`` until the end)."""
    return invoices.list_invoices(engine, actor, org(actor),
                                  run=_run(run_id) if run_id else None, status=status,
                                  kind=kind, account=account_reference, limit=limit,
                                  cursor=_public(cursor, "inv_") if cursor else None)


@router.get("/invoices/{invoice_id}", tags=["invoices"])
def get_invoice(invoice_id: str, actor: ActorDep, engine: EngineDep) -> dict[str, Any]:
    """A finalized invoice with lines, VAT breakdown and totals."""
    return invoices.show(engine, actor, org(actor), _public(invoice_id, "inv_"))


@router.get("/invoices/{invoice_id}/pdf", tags=["invoices"],
            responses={200: {"content": {"application/pdf": {}},
                             "description": "The PDF/A-3 Factur-X document."}})
def get_invoice_pdf(invoice_id: str, actor: ActorDep, engine: EngineDep) -> Response:
    name, data = invoices.download(engine, actor, org(actor), _public(invoice_id, "inv_"))
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/invoices/{invoice_id}/credit-notes", response_model=schemas.CreditNote,
             status_code=201, tags=["invoices"])
def credit_note(invoice_id: str, body: CreditNoteIn, actor: ActorDep,
                engine: EngineDep) -> Any:
    """A numbered credit note against a finalized invoice (invoices never change)."""
    return invoices.credit_note(engine, actor, org(actor), _public(invoice_id, "inv_"),
                                reason=body.reason, amount=body.amount)


@router.post("/invoices/{invoice_id}/void", response_model=schemas.CreditNote,
             tags=["invoices"])
def void_invoice(invoice_id: str, body: VoidInvoiceIn, actor: ActorDep,
                 engine: EngineDep) -> Any:
    """Void: a full credit note is issued; the invoice is kept, marked void."""
    return invoices.void(engine, actor, org(actor), _public(invoice_id, "inv_"),
                         reason=body.reason)
