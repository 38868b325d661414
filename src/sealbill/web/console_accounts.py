"""Operator console: accounts, their contacts and subscriptions — read and changed.

Each form calls one use case of :mod:`sealbill.app` (``accounts``, ``contacts``,
``subscriptions``), which checks the role, validates as the CLI and the API do, and audits; a
refused form is shown again with its field errors (:mod:`sealbill.web.forms`). The account page
also shows each contact's verification state, history and seal checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import (
    accounts,
    catalog,
    contact_vouch,
    contacts,
    invoices,
    organizations,
    seal_status,
    subscriptions,
    usage,
)
from sealbill.app.errors import AppError
from sealbill.inputs.accounts import Role
from sealbill.web import base
from sealbill.web.console import act, call, show, signed_in
from sealbill.web.forms import Failed, failed, given

router = APIRouter(prefix="/console/accounts")
ACCOUNT_FIELDS = ("name", "address_line1", "address_line2", "postcode", "city", "country",
                  "vat_id", "siren", "locale", "electronic_address")
NEW_FIELDS = ("reference", *ACCOUNT_FIELDS, "currency", "is_business")


@router.get("")
@signed_in
async def account_list(request: Request, who: base.Console, cursor: str | None = None
                       ) -> Response:
    data = await call(accounts.list_accounts, base.engine(request), who.actor,
                      who.org_id, limit=50, cursor=cursor)
    return show(request, who, "console/accounts.html", page=data)


@router.get("/new")
@signed_in
async def new_account_page(request: Request, who: base.Console) -> Response:
    return show(request, who, "console/account_new.html", failed=None)


@router.post("/new")
@signed_in
async def create_account(request: Request, who: base.Console) -> Response:
    form = await base.posted(request, who.csrf)
    data: dict[str, Any] = given(form, NEW_FIELDS)
    try:
        made = await call(accounts.create, base.engine(request), who.actor, who.org_id, data)
    except AppError as exc:
        refused = failed("create", exc, form)
        return base.show(request, "console/account_new.html", who.csrf, status=refused.status,
                         actor=who.actor, failed=refused)
    return base.redirect(f"/console/accounts/{made['id']}")


async def _page(request: Request, who: base.Console, ref: str,
                refused: Failed | None = None) -> Response:
    db, org, actor = base.engine(request), who.org_id, who.actor
    account = await call(accounts.show, db, actor, org, ref)
    people = await call(contacts.list_contacts, db, actor, org, account_ref=ref, history=True)
    seals = await call(seal_status.account_contacts, db, actor, org, ref)
    docs = await call(invoices.list_invoices, db, actor, org, account=account["reference"],
                      limit=100)
    subs = await call(subscriptions.list_subscriptions, db, actor, org, account_ref=ref)
    events = await call(usage.list_events, db, actor, org, account=ref, limit=100)
    plans = await call(catalog.list_plans, db, actor, org)
    page = base.show(request, "console/account.html", who.csrf,
                     status=refused.status if refused else 200, actor=actor,
                     account=account, contacts=people, seals=seals, invoices=docs["items"],
                     subscriptions=subs, usage=events, failed=refused,
                     plans=[p for p in plans if p.get("currency") == account["currency"]])
    return page


@router.get("/{ref}")
@signed_in
async def account_detail(request: Request, who: base.Console, ref: str) -> Response:
    return await _page(request, who, ref)


async def _act(request: Request, who: base.Console, ref: str, form_name: str,
               action: Callable[[Any, dict[str, str]], Any]) -> Response:
    return await act(request, who, form_name, action,
                     lambda refused: _page(request, who, ref, refused),
                     f"/console/accounts/{ref}")


@router.post("/{ref}/edit")
@signed_in
async def edit_account(request: Request, who: base.Console, ref: str) -> Response:
    def action(db: Any, form: dict[str, str]) -> Any:
        # Only what the operator changed; an emptied optional field is cleared.
        current = accounts.show(db, who.actor, who.org_id, ref)
        changes: dict[str, Any] = {}
        for name in ACCOUNT_FIELDS:
            value = form.get(name, "").strip()
            if value != str(current.get(name) or ""):
                changes[name] = value or ("" if name == "address_line2" else None)
        return accounts.update(db, who.actor, who.org_id, ref, changes)
    return await _act(request, who, ref, "edit", action)


@router.post("/{ref}/archive")
@signed_in
async def archive_account(request: Request, who: base.Console, ref: str) -> Response:
    return await _act(request, who, ref, "archive", lambda db, form: accounts.archive(
        db, who.actor, who.org_id, ref))


@router.post("/{ref}/contacts")
@signed_in
async def add_contact(request: Request, who: base.Console, ref: str) -> Response:
    return await _act(request, who, ref, "add-contact", lambda db, form: contacts.add(
        db, who.actor, who.org_id, ref, given(form, ("email", "name", "role"))))


@router.post("/{ref}/contacts/{contact_ref}/address")
@signed_in
async def change_address(request: Request, who: base.Console, ref: str, contact_ref: str
                         ) -> Response:
    return await _act(request, who, ref, f"address-{contact_ref}",
                      lambda db, form: contacts.change_address(
                          db, who.actor, who.org_id, contact_ref, form.get("email", "")))


@router.post("/{ref}/contacts/{contact_ref}/role")
@signed_in
async def set_role(request: Request, who: base.Console, ref: str, contact_ref: str
                   ) -> Response:
    return await _act(request, who, ref, f"role-{contact_ref}",
                      lambda db, form: contacts.set_role(
                          db, who.actor, who.org_id, contact_ref, ref,
                          cast(Role, form.get("role", "")),
                          from_role=cast(Role | None, form.get("from_role") or None)))


@router.post("/{ref}/contacts/{contact_ref}/unlink")
@signed_in
async def unlink(request: Request, who: base.Console, ref: str, contact_ref: str) -> Response:
    return await _act(request, who, ref, f"unlink-{contact_ref}",
                      lambda db, form: contacts.unlink(db, who.actor, who.org_id,
                                                       contact_ref, ref))


@router.post("/{ref}/contacts/{contact_ref}/verify")
@signed_in
async def send_code(request: Request, who: base.Console, ref: str, contact_ref: str
                    ) -> Response:
    """Mail the contact a single-use code, with a link to the portal's verification page
    (after an address change, or for a contact added here)."""
    web = base.config(request)

    def action(db: Any, form: dict[str, str]) -> Any:
        slug = organizations.show_id(db, who.actor, who.org_id)["slug"]
        return contacts.send_verification(
            db, who.actor, who.org_id, contact_ref, ref,
            link_base=f"{web.public_url}/portal/{quote(slug)}/verify",
            transport=web.transport(), key=web.secret_key)
    return await _act(request, who, ref, f"verify-{contact_ref}", action)


@router.post("/{ref}/contacts/{contact_ref}/vouch")
@signed_in
async def vouch(request: Request, who: base.Console, ref: str, contact_ref: str) -> Response:
    """Verify the billing contact on an operator's word, with the method and the evidence
    (``sealbill contacts vouch``)."""
    return await _act(request, who, ref, f"vouch-{contact_ref}", lambda db, form: (
        contact_vouch.vouch(db, who.actor, who.org_id, contact_ref, ref,
                            method=form.get("method", ""),
                            evidence=form.get("evidence", ""))))


@router.post("/{ref}/subscriptions")
@signed_in
async def create_subscription(request: Request, who: base.Console, ref: str) -> Response:
    return await _act(request, who, ref, "subscribe", lambda db, form: subscriptions.create(
        db, who.actor, who.org_id,
        {"account": ref, **given(form, ("plan", "started_on", "external_id", "trial_days"))}))


def _when(form: dict[str, str]) -> dict[str, Any]:
    """``when``: ``now`` (today), ``on`` (the date given) or ``period_end``."""
    when = form.get("when", "now")
    data: dict[str, Any] = {"at_period_end": when == "period_end"}
    if when == "on":
        data["on"] = form.get("on", "").strip() or None
    return data


@router.post("/{ref}/subscriptions/{sub_ref}/plan")
@signed_in
async def change_plan(request: Request, who: base.Console, ref: str, sub_ref: str
                      ) -> Response:
    return await _act(request, who, ref, f"plan-{sub_ref}",
                      lambda db, form: subscriptions.change_plan(
                          db, who.actor, who.org_id, sub_ref,
                          {"plan": form.get("plan", ""), **_when(form)}))


@router.post("/{ref}/subscriptions/{sub_ref}/cancel")
@signed_in
async def cancel(request: Request, who: base.Console, ref: str, sub_ref: str) -> Response:
    return await _act(request, who, ref, f"cancel-{sub_ref}",
                      lambda db, form: subscriptions.cancel(db, who.actor, who.org_id,
                                                            sub_ref, _when(form)))
