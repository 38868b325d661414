"""``/v1/accounts``, ``/v1/contacts``, ``/v1/subscriptions``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from sealbill.api import schemas
from sealbill.api.bodies import (
    ChangeAddressIn,
    ConfirmCodeIn,
    SetRoleIn,
    UnlinkIn,
    VerifyIn,
    VouchIn,
)
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.api.routes_setup import _public
from sealbill.app import accounts, contacts, subscriptions
from sealbill.app.common import etag
from sealbill.inputs.accounts import AccountIn, AccountPatch, ContactIn
from sealbill.inputs.subscriptions import CancelIn, PlanChangeIn, SubscriptionIn

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=1000)]
IfMatch = Annotated[str | None, Header(description="The ETag read last; 412 if it changed.")]


def _acc(value: str) -> str:
    return _public(value, "acc_")


@router.get("/accounts", response_model=schemas.Page[schemas.Account], tags=["accounts"])
def list_accounts(actor: ActorDep, engine: EngineDep, limit: Limit = 50,
                  cursor: str | None = None, archived: bool | None = None) -> Any:
    if cursor is not None:
        _acc(cursor)
    return accounts.list_accounts(engine, actor, org(actor), limit=limit, cursor=cursor,
                                  archived=archived)


@router.post("/accounts", response_model=schemas.Account, status_code=201, tags=["accounts"])
def create_account(body: AccountIn, actor: ActorDep, engine: EngineDep,
                   response: Response) -> Any:
    result = accounts.create(engine, actor, org(actor), body)
    response.headers["ETag"] = etag(result)
    return result


@router.get("/accounts/{account_id}", response_model=schemas.Account, tags=["accounts"])
def get_account(account_id: str, actor: ActorDep, engine: EngineDep,
                response: Response) -> Any:
    result = accounts.show(engine, actor, org(actor), _acc(account_id))
    response.headers["ETag"] = etag(result)
    return result


@router.patch("/accounts/{account_id}", response_model=schemas.Account, tags=["accounts"])
def update_account(account_id: str, body: AccountPatch, actor: ActorDep, engine: EngineDep,
                   response: Response, if_match: IfMatch = None) -> Any:
    """Change fields; with ``If-Match`` only if nobody changed the account since."""
    result = accounts.update(engine, actor, org(actor), _acc(account_id),
                             body.model_dump(exclude_unset=True), if_match=if_match)
    response.headers["ETag"] = etag(result)
    return result


@router.post("/accounts/{account_id}/archive", response_model=schemas.Account,
             tags=["accounts"])
def archive_account(account_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    return accounts.archive(engine, actor, org(actor), _acc(account_id))


@router.get("/accounts/{account_id}/contacts", response_model=list[schemas.Contact],
            tags=["contacts"])
def account_contacts(account_id: str, actor: ActorDep, engine: EngineDep,
                     history: bool = False) -> Any:
    return contacts.list_contacts(engine, actor, org(actor), account_ref=_acc(account_id),
                                  history=history)


@router.post("/accounts/{account_id}/contacts", response_model=schemas.Contact,
             status_code=201, tags=["contacts"])
def add_contact(account_id: str, body: ContactIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Link a contact with a role; pending until verified."""
    return contacts.add(engine, actor, org(actor), _acc(account_id), body)


def _con(value: str) -> str:
    return _public(value, "con_")


@router.get("/contacts/{contact_id}", response_model=schemas.Contact, tags=["contacts"])
def get_contact(contact_id: str, actor: ActorDep, engine: EngineDep,
                response: Response) -> Any:
    """A contact with its links and full history, with its ``ETag``."""
    result = contacts.show(engine, actor, org(actor), _con(contact_id))
    response.headers["ETag"] = etag(result)
    return result


@router.post("/contacts/{contact_id}/change-address", response_model=schemas.Contact,
             tags=["contacts"])
def change_address(contact_id: str, body: ChangeAddressIn, actor: ActorDep,
                   engine: EngineDep, if_match: IfMatch = None) -> Any:
    """New address: every link back to pending (re-verification required). With
    ``If-Match`` (the ETag of ``GET``), only if nobody changed the contact since (412)."""
    return contacts.change_address(engine, actor, org(actor), _con(contact_id), body.email,
                                   if_match=if_match)


@router.post("/contacts/{contact_id}/set-role", response_model=schemas.Contact,
             tags=["contacts"])
def set_role(contact_id: str, body: SetRoleIn, actor: ActorDep, engine: EngineDep,
             if_match: IfMatch = None) -> Any:
    """Move the contact's link on an account to another role (pending again); ``If-Match``
    as for ``change-address``."""
    return contacts.set_role(engine, actor, org(actor), _con(contact_id), _acc(body.account),
                             body.role, from_role=body.from_role, if_match=if_match)


@router.post("/contacts/{contact_id}/unlink", response_model=schemas.Contact,
             tags=["contacts"])
def unlink(contact_id: str, body: UnlinkIn, actor: ActorDep, engine: EngineDep,
           if_match: IfMatch = None) -> Any:
    """Revoke the contact's links on an account (history kept); ``If-Match`` as for
    ``change-address``."""
    return contacts.unlink(engine, actor, org(actor), _con(contact_id), _acc(body.account),
                           body.role, if_match=if_match)


@router.post("/contacts/{contact_id}/vouch", response_model=schemas.Contact,
             tags=["contacts"])
def vouch(contact_id: str, body: VouchIn, actor: ActorDep, engine: EngineDep) -> Any:
    """An operator verifies the billing contact, with a recorded reason."""
    return contacts.confirm_by_operator(engine, actor, org(actor), _con(contact_id),
                                        _acc(body.account), body.reason)


@router.post("/contacts/{contact_id}/verify", response_model=schemas.VerificationSent,
             tags=["contacts"])
def verify(contact_id: str, body: VerifyIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Mail a single-use code to the contact's address."""
    return contacts.send_verification(engine, actor, org(actor), _con(contact_id),
                                      _acc(body.account), link_base=body.link_base)


@router.post("/verifications/confirm", response_model=schemas.Contact, tags=["contacts"])
def confirm(body: ConfirmCodeIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Redeem a verification code (the link becomes verified)."""
    return contacts.confirm_code(engine, actor, org(actor), body.code)


def _sub(value: str) -> str:
    return _public(value, "sub_")


@router.get("/subscriptions", response_model=schemas.Page[schemas.Subscription],
            tags=["subscriptions"])
def list_subscriptions(actor: ActorDep, engine: EngineDep, account_id: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       cursor: str | None = None) -> Any:
    """Subscriptions in creation order, a page at a time (``next_cursor`` until the end)."""
    return subscriptions.page_subscriptions(
        engine, actor, org(actor), account_ref=_acc(account_id) if account_id else None,
        limit=limit, cursor=_sub(cursor) if cursor else None)


@router.post("/subscriptions", response_model=schemas.Subscription, status_code=201,
             tags=["subscriptions"])
def create_subscription(body: SubscriptionIn, actor: ActorDep, engine: EngineDep) -> Any:
    _acc(body.account)
    return subscriptions.create(engine, actor, org(actor), body)


@router.get("/subscriptions/{subscription_id}", response_model=schemas.Subscription,
            tags=["subscriptions"])
def get_subscription(subscription_id: str, actor: ActorDep, engine: EngineDep,
                     response: Response) -> Any:
    """The subscription and its phases, with its ``ETag``."""
    result = subscriptions.show(engine, actor, org(actor), _sub(subscription_id))
    response.headers["ETag"] = etag(result)
    return result


@router.post("/subscriptions/{subscription_id}/change-plan",
             response_model=schemas.Subscription, tags=["subscriptions"])
def change_plan(subscription_id: str, body: PlanChangeIn, actor: ActorDep,
                engine: EngineDep, response: Response, if_match: IfMatch = None) -> Any:
    """Change plan on a day or at period end; the next invoice prorates by days. With
    ``If-Match``, only if nobody changed the subscription since (412)."""
    result = subscriptions.change_plan(engine, actor, org(actor), _sub(subscription_id), body,
                                       if_match=if_match)
    response.headers["ETag"] = etag(result)
    return result


@router.post("/subscriptions/{subscription_id}/cancel", response_model=schemas.Subscription,
             tags=["subscriptions"])
def cancel(subscription_id: str, body: CancelIn, actor: ActorDep, engine: EngineDep,
           response: Response, if_match: IfMatch = None) -> Any:
    """Cancel now, on a day or at period end. With ``If-Match``, only if nobody changed the
    subscription since (412)."""
    result = subscriptions.cancel(engine, actor, org(actor), _sub(subscription_id), body,
                                  if_match=if_match)
    response.headers["ETag"] = etag(result)
    return result
