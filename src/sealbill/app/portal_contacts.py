"""Contacts managed by the customer from the portal, and the verification page's confirmation.

Invariants:
- an invited address is linked to the account as a *pending* billing contact and receives one
  mail, the verification mail; nothing else is sent to it before it confirms;
- a contact changes their own address only by verifying the new one: the new address is
  invited with the purpose ``replace:<old contact id>``, and the old address is unlinked from the
  account only when the new one is confirmed (until then invoices keep going to the old one);
- a contact removes a colleague (their links on this account are revoked, history kept), never
  themselves;
- a code is confirmed with a POST from the verification page (a mail scanner fetching the link
  confirms nothing); a code of another purpose (a sign-in link) is refused there;
- every change is in ``contact_events`` (through :mod:`sealbill.store.parties.records`) and the
audit log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit, ids
from sealbill.app.errors import Invalid, NotFound, Problem, StateError
from sealbill.app.portal import PortalUser, org_by_slug
from sealbill.app.portal_mail import TransportFactory, send_text
from sealbill.documents.verification_mail import verification_text
from sealbill.inputs.accounts import ContactIn
from sealbill.inputs.models import parse
from sealbill.store.parties import records as parties
from sealbill.store.parties import verification as tokens
from sealbill.store.schema import accounts, contact_links, contacts, verification_tokens

REPLACE = "replace:"


def account_contacts(engine: Engine, user: PortalUser) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(contacts.c.id, contacts.c.email, contacts.c.name, contact_links.c.role,
                      contact_links.c.status, contact_links.c.verified_at)
            .join(contact_links, contact_links.c.contact_id == contacts.c.id)
            .where(contact_links.c.organization_id == user.org_id,
                   contact_links.c.account_id == user.account_id,
                   contact_links.c.status != "revoked")
            .order_by(contacts.c.email)).all()
        return [{"id": ids.encode(conn, user.org_id, "contact", int(r.id)), "email": r.email,
                 "name": r.name, "role": r.role, "status": r.status,
                 "verified_at": r.verified_at, "me": int(r.id) == user.contact_id}
                for r in rows]


def _address(email: str) -> str:
    return parse(ContactIn, {"email": email}, "contact").email


def invite(engine: Engine, user: PortalUser, email: str, name: str, *, slug: str,
           portal_base: str, transport: TransportFactory, key: bytes,
           purpose: str = tokens.PURPOSE) -> str:
    """Link ``email`` as a pending billing contact and mail it a verification code and link."""
    contact = parse(ContactIn, {"email": email, "name": name}, "contact")
    address, name = contact.email, contact.name
    actor = user.actor
    with engine.begin() as conn:
        contact_id = parties.add_contact(conn, user.org_id, address, name=name,
                                         actor=actor.name)
        link_id = parties.link_contact(conn, user.org_id, contact_id, user.account_id,
                                       "billing", actor=actor.name)
        status = conn.execute(sa.select(contact_links.c.status).where(
            contact_links.c.id == link_id)).scalar_one()
        if status == "verified":
            raise StateError(f"{address} already receives this account's invoices")
        if status == "revoked":
            parties.set_link_status(conn, user.org_id, link_id, "pending", actor=actor.name,
                                    reason="invited again from the portal")
        code, expires = tokens.issue(conn, user.org_id, contact_id, user.account_id, key,
                                     purpose=purpose)
        public = ids.encode(conn, user.org_id, "contact", contact_id)
        audit.record(conn, actor, user.org_id, "contact.invite", "contact", public,
                     after={"email": address, "account": user.account_reference,
                            "role": "billing", "status": "pending", "purpose": purpose})
        org = parties.organization(conn, user.org_id)
    subject, body = verification_text(
        user.account_reference, code, expires.strftime("%Y-%m-%d %H:%M UTC"),
        f"{portal_base}/portal/{quote(slug)}/verify", user.locale)
    send_text(transport, org, address, subject, body)
    return public


def change_own_address(engine: Engine, user: PortalUser, new_email: str, *, slug: str,
                       portal_base: str, transport: TransportFactory, key: bytes) -> str:
    """Invite the new address; the old one is unlinked when the new one is confirmed."""
    if _address(new_email) == user.email:
        raise Invalid("contact: 1 problem(s)", [Problem("email", "this is already your address")])
    return invite(engine, user, new_email, "", slug=slug, portal_base=portal_base,
                  transport=transport, key=key, purpose=f"{REPLACE}{user.contact_id}")


def remove(engine: Engine, user: PortalUser, contact_ref: str) -> None:
    """Revoke a colleague's links on this account (never one's own; history kept)."""
    actor = user.actor
    with engine.begin() as conn:
        contact_id = ids.decode(conn, user.org_id, "contact", contact_ref)
        if contact_id == user.contact_id:
            raise StateError("you cannot remove yourself; ask a colleague or your supplier")
        links = conn.execute(sa.select(contact_links).where(
            contact_links.c.organization_id == user.org_id,
            contact_links.c.contact_id == contact_id,
            contact_links.c.account_id == user.account_id,
            contact_links.c.status != "revoked")).all()
        if not links:
            raise NotFound(f"contact {contact_ref!r} not found")
        for link in links:
            parties.set_link_status(conn, user.org_id, int(link.id), "revoked",
                                    actor=actor.name, reason="removed from the portal")
        audit.record(conn, actor, user.org_id, "contact.unlink", "contact", contact_ref,
                     before=[{"account": user.account_reference, "role": link.role,
                              "status": link.status} for link in links],
                     after={"status": "revoked"})


def pending_code(engine: Engine, slug: str, code: str) -> dict[str, Any]:
    """What a verification code is for (address, account), without consuming it."""
    org_id, _ = org_by_slug(engine, slug)
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(verification_tokens, contacts.c.email, accounts.c.reference)
            .join(contacts, contacts.c.id == verification_tokens.c.contact_id)
            .join(accounts, accounts.c.id == verification_tokens.c.account_id)
            .where(verification_tokens.c.organization_id == org_id,
                   verification_tokens.c.token_hash == tokens.digest(code.strip()))).first()
    if row is None or not _verification_purpose(str(row.purpose)):
        raise NotFound("unknown code")
    return {"email": row.email, "account": row.reference}


def _verification_purpose(purpose: str) -> bool:
    return purpose == tokens.PURPOSE or purpose.startswith(REPLACE)


def confirm(engine: Engine, slug: str, code: str, key: bytes) -> dict[str, Any]:
    """Consume a verification code: the billing link becomes verified (method email_token);
    for an address change, the old address's links on the account are revoked."""
    org_id, _ = org_by_slug(engine, slug)
    with engine.begin() as conn:
        purpose = conn.execute(sa.select(verification_tokens.c.purpose).where(
            verification_tokens.c.organization_id == org_id,
            verification_tokens.c.token_hash == tokens.digest(code.strip()))).scalar()
        if purpose is None or not _verification_purpose(str(purpose)):
            raise StateError("unknown code")
        try:
            redeemed = tokens.redeem(conn, org_id, code, key)
        except tokens.TokenError as exc:
            raise StateError(str(exc)) from None
        link_id = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == org_id,
            contact_links.c.contact_id == redeemed.contact_id,
            contact_links.c.account_id == redeemed.account_id,
            contact_links.c.role == "billing")).scalar()
        if link_id is None:
            raise StateError("the billing link no longer exists")
        email = conn.execute(sa.select(contacts.c.email).where(
            contacts.c.id == redeemed.contact_id)).scalar_one()
        actor = f"contact:{email}"
        parties.set_link_status(conn, org_id, int(link_id), "verified", actor=actor,
                                method="email_token", reason=f"code {redeemed.token_id}")
        replaced = None
        if str(purpose).startswith(REPLACE):
            replaced = int(str(purpose)[len(REPLACE):])
            for link in conn.execute(sa.select(contact_links.c.id).where(
                    contact_links.c.organization_id == org_id,
                    contact_links.c.contact_id == replaced,
                    contact_links.c.account_id == redeemed.account_id,
                    contact_links.c.status != "revoked")).all():
                parties.set_link_status(conn, org_id, int(link.id), "revoked", actor=actor,
                                        reason="address replaced by a verified new address")
        reference = conn.execute(sa.select(accounts.c.reference).where(
            accounts.c.id == redeemed.account_id)).scalar_one()
    return {"email": email, "account": reference, "replaced": replaced is not None}
