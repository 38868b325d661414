"""Customer portal: sign-in by magic link, the account's documents and delivery log, its
contacts, the verification page, and "not for me".

Every page under ``/portal/{slug}/`` other than the sign-in, verification and "not for me" pages
needs a portal session; a session sees exactly one account, and an id of anything else in a URL
answers 404 like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import misdelivery, portal, portal_contacts
from sealbill.app.errors import AppError, NotFound
from sealbill.store.parties import portal_sessions
from sealbill.web import base
from sealbill.web.console import call
from sealbill.web.downloads import attachment
from sealbill.web.security import set_cookie

router = APIRouter(prefix="/portal/{slug}")
Handler = Callable[..., Awaitable[Response]]


def customer(handler: Handler) -> Handler:
    """Run ``handler`` with the request's portal session, or send to the sign-in page."""
    async def wrapper(request: Request, slug: str, **params: Any) -> Response:
        who = await base.portal(request, slug)
        if who is None:
            return base.redirect(f"/portal/{slug}/")
        return await handler(request, who, **params)
    return base.as_route(wrapper, handler, extra=("slug", str))


def show(request: Request, who: base.Portal, template: str, **context: Any) -> Response:
    return base.show(request, template, who.csrf, locale=who.session.locale, user=who.user,
                     slug=who.slug, **context)


@router.get("/")
async def sign_in_page(request: Request, slug: str) -> Response:
    await call(portal.org_by_slug, base.engine(request), slug)
    return base.show(request, "portal/sign_in.html", slug=slug, sent=False)


@router.post("/")
async def request_link(request: Request, slug: str) -> Response:
    form = await base.posted(request, None)
    cfg = base.config(request)
    await call(portal.request_link, base.engine(request), slug, form.get("email", ""),
               portal_base=cfg.public_url, transport=cfg.transport, key=cfg.secret_key)
    return base.show(request, "portal/sign_in.html", slug=slug, sent=True)


@router.get("/enter")
async def enter_page(request: Request, slug: str, code: str = "") -> Response:
    """The link of the mail lands here; signing in is a POST (a mail scanner's GET uses
    nothing up)."""
    return base.show(request, "portal/enter.html", slug=slug, code=code)


@router.post("/enter")
async def enter(request: Request, slug: str) -> Response:
    form = await base.posted(request, None)
    db, cfg = base.engine(request), base.config(request)
    org_id, _ = await call(portal.org_by_slug, db, slug)
    contact_id, account_id = await call(portal.redeem_link, db, org_id,
                                        form.get("code", ""), cfg.secret_key)
    secret = await call(portal_sessions.create, db, org_id=org_id, contact_id=contact_id,
                        account_id=account_id, locale=base.language(request))
    response = base.redirect(f"/portal/{slug}/invoices")
    set_cookie(response, base.PORTAL_COOKIE, secret, path="/portal",
               secure=cfg.secure_cookies)
    return response


@router.post("/sign-out")
@customer
async def sign_out(request: Request, who: base.Portal) -> Response:
    await base.posted(request, who.csrf)
    await call(portal_sessions.end, base.engine(request), who.session.id)
    response = base.redirect(f"/portal/{who.slug}/")
    response.delete_cookie(base.PORTAL_COOKIE, path="/portal")
    return response


@router.get("/invoices")
@customer
async def documents(request: Request, who: base.Portal) -> Response:
    docs = await call(portal.documents, base.engine(request), who.user)
    return show(request, who, "portal/invoices.html", docs=docs, balance=portal.balance(docs))


@router.get("/invoices/{ref}/{kind}")
@customer
async def document(request: Request, who: base.Portal, ref: str, kind: str) -> Response:
    name, data = await call(portal.document, base.engine(request), who.user, ref, kind)
    return attachment(name, data, kind)


@router.get("/deliveries")
@customer
async def deliveries(request: Request, who: base.Portal) -> Response:
    rows = await call(portal.delivery_log, base.engine(request), who.user)
    return show(request, who, "portal/deliveries.html", rows=rows)


@router.get("/contacts")
@customer
async def contact_list(request: Request, who: base.Portal) -> Response:
    people = await call(portal_contacts.account_contacts, base.engine(request), who.user)
    return show(request, who, "portal/contacts.html", contacts=people, notice=None,
                error=None)


async def _contacts_after(request: Request, who: base.Portal, action: Callable[[], Any],
                          notice: str) -> Response:
    try:
        await call(action)
    except AppError as exc:
        people = await call(portal_contacts.account_contacts, base.engine(request), who.user)
        problems = "; ".join(str(p) for p in exc.problems) or exc.message
        return base.show(request, "portal/contacts.html", who.csrf, status=exc.status,
                         user=who.user, slug=who.slug, contacts=people, notice=None,
                         error=problems)
    people = await call(portal_contacts.account_contacts, base.engine(request), who.user)
    return show(request, who, "portal/contacts.html", contacts=people, notice=notice,
                error=None)


@router.post("/contacts/invite")
@customer
async def invite(request: Request, who: base.Portal) -> Response:
    form = await base.posted(request, who.csrf)
    db, cfg = base.engine(request), base.config(request)
    return await _contacts_after(request, who, lambda: portal_contacts.invite(
        db, who.user, form.get("email", ""), form.get("name", ""), slug=who.slug,
        portal_base=cfg.public_url, transport=cfg.transport, key=cfg.secret_key),
        "invited")


@router.post("/contacts/change-address")
@customer
async def change_address(request: Request, who: base.Portal) -> Response:
    form = await base.posted(request, who.csrf)
    db, cfg = base.engine(request), base.config(request)
    return await _contacts_after(request, who, lambda: portal_contacts.change_own_address(
        db, who.user, form.get("email", ""), slug=who.slug, portal_base=cfg.public_url,
        transport=cfg.transport, key=cfg.secret_key), "change_pending")


@router.post("/contacts/{contact_ref}/remove")
@customer
async def remove(request: Request, who: base.Portal, contact_ref: str) -> Response:
    await base.posted(request, who.csrf)
    db = base.engine(request)
    return await _contacts_after(request, who, lambda: portal_contacts.remove(
        db, who.user, contact_ref), "removed")


@router.get("/verify")
async def verify_page(request: Request, slug: str, code: str = "") -> Response:
    try:
        pending = await call(portal_contacts.pending_code, base.engine(request), slug, code)
    except NotFound:
        pending = None
    return base.show(request, "portal/verify.html", slug=slug, code=code, pending=pending,
                     done=None, error=None)


@router.post("/verify")
async def verify(request: Request, slug: str) -> Response:
    form = await base.posted(request, None)
    db, cfg = base.engine(request), base.config(request)
    try:
        done = await call(portal_contacts.confirm, db, slug, form.get("code", ""),
                          cfg.secret_key)
    except AppError as exc:
        return base.show(request, "portal/verify.html", status=exc.status, slug=slug,
                         code="", pending=None, done=None, error=exc.message)
    return base.show(request, "portal/verify.html", slug=slug, code="", pending=None,
                     done=done, error=None)


@router.get("/not-for-me/{token}")
async def not_for_me_page(request: Request, slug: str, token: str) -> Response:
    db, cfg = base.engine(request), base.config(request)
    org_id, _ = await call(portal.org_by_slug, db, slug)
    await call(misdelivery.check, db, org_id, token, cfg.secret_key)
    return base.show(request, "portal/not_for_me.html", slug=slug, token=token, report=None,
                     deleted=False)


@router.post("/not-for-me/{token}")
async def not_for_me(request: Request, slug: str, token: str) -> Response:
    form = await base.posted(request, None)
    db, cfg = base.engine(request), base.config(request)
    org_id, _ = await call(portal.org_by_slug, db, slug)
    if form.get("report"):
        report_id = int(form["report"]) if form["report"].isdigit() else -1
        await call(misdelivery.confirm_deletion, db, org_id, token, cfg.secret_key,
                   report_id)
        return base.show(request, "portal/not_for_me.html", slug=slug, token=token,
                         report=report_id, deleted=True)
    report_id = await call(misdelivery.report, db, org_id, token, cfg.secret_key,
                           form.get("note", ""))
    return base.show(request, "portal/not_for_me.html", slug=slug, token=token,
                     report=report_id, deleted=False)
