"""Operator console: guard alerts and "not for me" reports, usage voids, invoices, the ledger
search, incidents (blast radius, 72-hour clock, drafts)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import incident_open, invoices, misdelivery, records, usage
from sealbill.app.errors import AppError, Invalid, Problem
from sealbill.web import base
from sealbill.web.console import act, alerts_page, call, show, signed_in
from sealbill.web.console_incidents import incident_page
from sealbill.web.downloads import attachment
from sealbill.web.forms import Failed, failed

router = APIRouter(prefix="/console")


@router.get("/alerts")
@signed_in
async def alert_list(request: Request, who: base.Console) -> Response:
    return await alerts_page(request, who)


@router.post("/alerts/resume")
@signed_in
async def resume(request: Request, who: base.Console) -> Response:
    form = await base.posted(request, who.csrf)
    try:
        await call(records.resume_run, base.engine(request), who.actor, who.org_id,
                   form.get("run", ""), form.get("reason", ""))
    except AppError as exc:
        return await alerts_page(request, who, failed(f"resume-{form.get('run', '')}", exc,
                                                      form))
    return base.redirect("/console/alerts")


@router.post("/reports/{report_id}/incident")
@signed_in
async def incident_from_report(request: Request, who: base.Console, report_id: int
                               ) -> Response:
    await base.posted(request, who.csrf)
    incident_id = await call(misdelivery.open_incident, base.engine(request), who.actor,
                             who.org_id, report_id)
    return base.redirect(f"/console/incidents/{incident_id}")


@router.post("/accounts/{ref}/usage/{event_ref}/void")
@signed_in
async def void_usage(request: Request, who: base.Console, ref: str, event_ref: str
                     ) -> Response:
    """Void one usage event with a reason (kept, no longer rated: ``sealbill usage void``)."""
    form = await base.posted(request, who.csrf)
    await call(usage.void, base.engine(request), who.actor, who.org_id, event_ref,
               {"reason": form.get("reason", "")})
    return base.redirect(f"/console/accounts/{ref}")


@router.get("/invoices")
@signed_in
async def invoice_list(request: Request, who: base.Console, cursor: str | None = None
                       ) -> Response:
    data = await call(invoices.list_invoices, base.engine(request), who.actor,
                      who.org_id, limit=50, cursor=cursor)
    return show(request, who, "console/invoices.html", page=data)


@router.get("/invoices/{ref}/{kind}")
@signed_in
async def invoice_file(request: Request, who: base.Console, ref: str, kind: str) -> Response:
    if kind not in ("pdf", "xml"):
        raise AppError("pdf or xml")
    name, data = await call(invoices.download, base.engine(request), who.actor,
                            who.org_id, ref, kind)
    return attachment(name, data, kind)


def _time(value: str, name: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid("search: 1 problem(s)", [Problem(name, "not a date and time")]) from None
    if parsed.tzinfo is None:
        raise Invalid("search: 1 problem(s)",
                      [Problem(name, "give the time zone offset, e.g. 2026-11-01T00:00+01:00")])
    return parsed


async def ledger_page(request: Request, who: base.Console, criteria: dict[str, str],
                      refused: Failed | None = None) -> Response:
    rows = None
    if any(v.strip() for v in criteria.values()):
        rows = await call(records.ledger_search, base.engine(request), who.actor,
                          who.org_id, address=criteria["address"],
                          account=criteria["account"], invoice=criteria["invoice"],
                          since=_time(criteria["since"], "since"),
                          until=_time(criteria["until"], "until"))
    return base.show(request, "console/ledger.html", who.csrf,
                     status=refused.status if refused else 200, actor=who.actor,
                     criteria=criteria, rows=rows, failed=refused,
                     now=datetime.now(UTC).replace(microsecond=0).isoformat())


@router.get("/ledger")
@signed_in
async def ledger(request: Request, who: base.Console, address: str = "", account: str = "",
                 invoice: str = "", since: str = "", until: str = "") -> Response:
    return await ledger_page(request, who, {"address": address, "account": account,
                                            "invoice": invoice, "since": since,
                                            "until": until})


@router.post("/incidents")
@signed_in
async def open_incident(request: Request, who: base.Console) -> Response:
    """Open an incident on the messages of a ledger search (the search's criteria come
    with the form), with its description; the kill switch at once if asked."""
    form = await base.posted(request, who.csrf)
    try:
        incident_id = await call(
            incident_open.open_from_ledger, base.engine(request), who.actor, who.org_id,
            title=form.get("title", ""), description=form.get("description", ""),
            aware_at=form.get("aware_at", ""), search=form, pause=form.get("pause") == "yes")
    except AppError as exc:
        criteria = {k: form.get(k, "") for k in incident_open.SEARCH_FIELDS}
        try:
            return await ledger_page(request, who, criteria, failed("open", exc, form))
        except AppError:  # the criteria themselves were refused: show them unsearched
            return await ledger_page(request, who, dict.fromkeys(criteria, ""),
                                     failed("open", exc, form))
    return base.redirect(f"/console/incidents/{incident_id}")


@router.get("/incidents")
@signed_in
async def incident_list(request: Request, who: base.Console) -> Response:
    items = await call(records.incident_list, base.engine(request), who.actor,
                       who.org_id)
    return show(request, who, "console/incidents.html", incidents=items)


@router.get("/incidents/{incident_id}")
@signed_in
async def incident_detail(request: Request, who: base.Console, incident_id: int) -> Response:
    return await incident_page(request, who, incident_id)


@router.post("/incidents/{incident_id}/correct-link")
@signed_in
async def correct_link(request: Request, who: base.Console, incident_id: int) -> Response:
    """Mark a contact's link to an account as never entitled (``incident correct-link``): the
    blast radius is then judged with the correction."""
    return await act(request, who, "correct-link", lambda db, form: records.correct_link(
        db, who.actor, who.org_id, incident_id, form.get("contact", ""),
        form.get("account", ""), form.get("reason", "")),
        lambda refused: incident_page(request, who, incident_id, refused),
        f"/console/incidents/{incident_id}")


@router.get("/incidents/{incident_id}/drafts.zip")
@signed_in
async def incident_drafts(request: Request, who: base.Console, incident_id: int) -> Response:
    name, data = await call(records.incident_drafts, base.engine(request), who.actor,
                            who.org_id, incident_id)
    return attachment(name, data, "zip")
